"""One scoring function over every source's features: a logistic regression learned on the time-based holdout.

Rows are the candidates recalled for holdout users with the data before the holdout; the label is whether the user
bought (or rated, for review shops) the item inside the holdout. No weight is set by hand: when the holdout has too
few positives to learn from, the fallback is the served model's own order, and the run says so.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from recsys_tasks.policy.candidates import FEATURE_NAMES, FEATURES, recall
from recsys_tasks.policy.signals import Moment

MIN_POSITIVES = 20  # fewer holdout positives than this: fall back to the served model's order
REGULARISATION = 1.0  # inverse L2 strength of the logistic regression (features are standardised)


@dataclass
class Ranker:
    """score(user, item) = intercept + sum_f weight_f * (x_f - mean_f) / scale_f, a purchase log-odds."""

    weights: list[float]
    intercept: float
    mean: list[float]
    scale: list[float]
    how: str  # "learned" | "fallback: <why>"
    info: dict = field(default_factory=dict)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(self.weights, np.float32), np.asarray(self.mean, np.float32),
                np.asarray(self.scale, np.float32))

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Return (B, n_items) scores from (n_features, B, n_items) features."""
        w, mean, scale = self._arrays()
        coef = w / scale
        out = np.tensordot(coef, features, axes=1)
        return out + np.float32(self.intercept - float((coef * mean).sum()))

    def contributions(self, features: np.ndarray, row: int, items: np.ndarray) -> dict[str, np.ndarray]:
        """Return each source's share of the score of items for chunk row `row` (weight x feature / scale)."""
        w, _, scale = self._arrays()
        x = features[:, row, items]  # (n_features, len(items))
        out: dict[str, np.ndarray] = {}
        for f, name in enumerate(FEATURE_NAMES):
            out[FEATURES[name]] = out.get(FEATURES[name], 0.0) + w[f] / scale[f] * x[f]
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"features": list(FEATURE_NAMES), **asdict(self)}, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Ranker":
        raw = json.loads(Path(path).read_text())
        raw.pop("features", None)
        return cls(**raw)


def served_order(why: str) -> Ranker:
    """Return the fallback: the served model's rank alone (the bare model's order)."""
    n = len(FEATURE_NAMES)
    weights = [1.0 if f == "served" else 0.0 for f in FEATURE_NAMES]
    return Ranker(weights, 0.0, [0.0] * n, [1.0] * n, f"fallback: {why}")


def training_rows(moment: Moment, model, users: np.ndarray, targets: list[set[int]], per_source: int,
                  new_item_days: int, exclude=None, chunk: int = 256) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return the candidates' feature rows (n_rows, n_features), labels, and recall counts for holdout users."""
    xs, ys = [], []
    found = total = 0
    for start in range(0, len(users), chunk):
        rows = users[start:start + chunk]
        cand = recall(moment, model, rows, per_source, new_item_days, exclude)
        label = np.zeros(cand.recalled.shape, dtype=bool)
        for r, t in enumerate(targets[start:start + chunk]):
            label[r, list(t)] = True
        b, i = np.nonzero(cand.recalled)
        xs.append(cand.features[:, b, i].T)
        ys.append(label[b, i])
        found += int((label & cand.recalled).sum())
        total += int(label.sum())
    x = np.vstack(xs) if xs else np.zeros((0, len(FEATURE_NAMES)), np.float32)
    y = np.concatenate(ys) if ys else np.zeros(0, bool)
    return x, y, {"holdout_users": len(users), "targets": total, "targets_recalled": found,
                  "candidate_rows": int(len(y))}


def learn(x: np.ndarray, y: np.ndarray, info: dict | None = None) -> Ranker:
    """Return the logistic regression of y on standardised x, or the served-order fallback."""
    info = dict(info or {})
    if int(y.sum()) < MIN_POSITIVES or int((~y).sum()) < MIN_POSITIVES:
        return served_order(f"{int(y.sum())} holdout positives among {len(y)} candidates")
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    fit = LogisticRegression(C=REGULARISATION, max_iter=1000).fit((x - mean) / scale, y)
    info.update({"positives": int(y.sum()), "rows": int(len(y)),
                 "weights_by_feature": dict(zip(FEATURE_NAMES, np.round(fit.coef_[0], 4).tolist()))})
    return Ranker(fit.coef_[0].astype(float).tolist(), float(fit.intercept_[0]), mean.astype(float).tolist(),
                  scale.astype(float).tolist(), "learned", info)

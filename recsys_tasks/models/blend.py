"""A weighted blend of two or more fitted models: the sum of their log-probabilities over the catalogue.

Each part turns its scores into log-probabilities (`Recommender.log_scores`: a log-softmax of the row, or the
gbdt model's own calibrated purchase probabilities), so a transformer's logits and a tree ensemble's probabilities
add up on one scale. The nightly evaluation blends its two best candidates at a few weights on the holdout and
serves the blend only when it beats every single model there (training.evaluate).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys_tasks.models.base import Evidence, Recommender, TrainingData


def _part_dir(directory: Path, index: int, name: str) -> Path:
    return Path(directory) / f"part-{index}-{name}"


class Blend(Recommender):
    """score(u) = sum_i weight_i * part_i.log_scores(u); weights are normalised to sum to 1."""

    name = "blend"
    scale_limits = "blend: the sum of its parts' costs; scoring calls every part once per chunk of users"

    def __init__(self, parts: list | tuple = (), weights: list | tuple = ()) -> None:
        super().__init__()
        self.parts = [[str(name), dict(params)] for name, params in parts]  # list: [registry name, params] per part
        if len(self.parts) < 2:
            raise ValueError("blend: needs at least two parts")
        names = [name for name, _ in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(f"blend: its parts must be different models, not {names}")
        if len(weights) != len(self.parts) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"blend: needs one non-negative weight per part, not {list(weights)}")
        self.weights = [float(w) / float(sum(weights)) for w in weights]  # list: part weights, summing to 1
        self.models: list[Recommender] = []

    @classmethod
    def of(cls, models: list[Recommender], weights: list[float]) -> "Blend":
        """Return the blend of already fitted models (same users and items), without refitting them."""
        blend = cls([[m.name, m.get_params()] for m in models], weights)
        first = models[0]
        for m in models[1:]:
            if m.users != first.users or m.items != first.items:
                raise ValueError(f"blend: {m.name} was fitted on other users or items than {first.name}")
        blend.models = list(models)
        blend.users, blend.items = list(first.users), list(first.items)
        return blend

    def get_params(self) -> dict:
        return {"parts": self.parts, "weights": self.weights}

    def fit(self, data: TrainingData) -> "Blend":
        from recsys_tasks.models import build_distilling, fit_order

        params = dict(self.parts)
        fitted: dict[str, Recommender] = {}
        for name in fit_order(params):  # a student part distils the blend's own teacher
            fitted[name] = build_distilling(name, fitted, **params[name]).fit(data)
        self.models = [fitted[name] for name, _ in self.parts]
        self._remember_ids(data)
        return self

    @property
    def fit_report(self) -> dict:
        return {name: getattr(m, "fit_report", {}) for (name, _), m in zip(self.parts, self.models)}

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        total = None
        for weight, model in zip(self.weights, self.models):
            if weight == 0:
                continue
            part = weight * model.log_scores(user_idx)
            total = part if total is None else total + part
        return total.astype(np.float32)

    def explain(self, user_idx: int, item_idx: np.ndarray) -> list[Evidence]:
        """Per item, the evidence of the heaviest part that has a reason beyond popularity (else the heaviest's)."""
        self._check_fitted()
        order = np.argsort(-np.asarray(self.weights), kind="stable")
        answers = [self.models[i].explain(user_idx, item_idx) for i in order]
        out = []
        for k in range(len(np.atleast_1d(item_idx))):
            found = [a[k] for a in answers if a[k].strategy not in ("popularity", "segment_popularity")]
            out.append(found[0] if found else answers[0][k])
        return out

    def _state(self) -> dict:
        return {}

    def _set_state(self, state: dict) -> None:
        pass

    def save(self, directory: Path) -> None:
        """Write the blend's model.json and each part into part-<i>-<name>/ beside it."""
        super().save(directory)
        for i, ((name, _), model) in enumerate(zip(self.parts, self.models)):
            model.save(_part_dir(directory, i, name))

    @classmethod
    def load(cls, directory: Path) -> "Blend":
        from recsys_tasks.models import load_model

        blend = super().load(directory)
        blend.models = [load_model(_part_dir(directory, i, name)) for i, (name, _) in enumerate(blend.parts)]
        return blend

"""The scoring function is learned from the holdout, not set by hand; too little data falls back to the model's order."""
from __future__ import annotations

import numpy as np

from recsys_tasks.policy.candidates import FEATURE_NAMES, FEATURES
from recsys_tasks.policy.ranker import Ranker, learn, served_order

F = len(FEATURE_NAMES)


def _data(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, F)).astype(np.float32)
    logit = 4 * x[:, FEATURE_NAMES.index("propensity")] - 2 * x[:, FEATURE_NAMES.index("popularity")] - 1
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return x, y


def test_weights_follow_the_holdout_labels():
    x, y = _data()
    ranker = learn(x, y)
    w = dict(zip(FEATURE_NAMES, ranker.weights))
    assert ranker.how == "learned"
    assert w["propensity"] == max(w.values()) and w["popularity"] == min(w.values())
    features = x.T[:, None, :]  # (n_features, 1 user, n items)
    score = ranker.logits(features)[0]
    assert np.corrcoef(score, x[:, FEATURE_NAMES.index("propensity")])[0, 1] > 0.5


def test_contributions_name_the_features_source():
    x, y = _data()
    ranker = learn(x, y)
    features = np.zeros((F, 1, 2), dtype=np.float32)
    features[FEATURE_NAMES.index("propensity"), 0, 0] = 1.0
    parts = ranker.contributions(features, 0, np.asarray([0, 1]))
    assert set(parts) == set(FEATURES.values())
    best = max(parts, key=lambda g: parts[g][0])
    assert best == "buy_again" and all(abs(v[1]) < 1e-9 for v in parts.values())


def test_too_few_positives_fall_back_to_the_served_order(tmp_path):
    x, _ = _data(200)
    y = np.zeros(200, dtype=bool)
    y[:3] = True
    ranker = learn(x, y)
    assert ranker.how.startswith("fallback")
    assert ranker.weights == served_order("x").weights
    ranker.save(tmp_path / "r.json")
    assert Ranker.load(tmp_path / "r.json") == ranker

"""Models, top-k and the training data on tiny hand-built matrices."""
import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys_tasks.models import (
    EASE,
    MODELS,
    ItemKNN,
    Popularity,
    Repeat,
    SegmentPopularity,
    TrainingData,
    build_model,
    load_model,
    top_k,
)
from recsys_tasks.models import topk as topk_module

AS_OF = dt.date(2024, 3, 1)
# 4 users x 5 items; item 4 is never interacted with
WEIGHTS = np.array(
    [
        [1, 2, 0, 0, 0],
        [3, 0, 1, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 2, 5, 0],
    ],
    dtype=np.float32,
)
PURCHASES = np.array(
    [
        [2, 2, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 1, 4, 0],
    ],
    dtype=np.float32,
)
AGES = np.array(
    [
        [10, 3, 0, 0, 0],
        [40, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 7, 2, 0],
    ],
    dtype=np.float32,
)
POPULARITY = np.array([5.0, 3.0, 3.0, 1.0, 0.0])


@pytest.fixture
def data() -> TrainingData:
    return TrainingData(
        users=["u0", "u1", "u2", "u3"],
        items=["a", "b", "c", "d", "e"],
        interactions=sp.csr_matrix(WEIGHTS),
        purchases=sp.csr_matrix(PURCHASES),
        last_purchase_age_days=sp.csr_matrix(AGES),
        recent_popularity=POPULARITY,
        user_segment=np.array(["UK", "UK", "FR", ""]),
        as_of=AS_OF,
    )


ALL_USERS = np.arange(4)


def fitted(name: str, data: TrainingData, **params):
    return build_model(name, **params).fit(data)


# ---------------------------------------------------------------- training data


def test_from_frames_builds_the_matrices():
    interactions = pl.DataFrame(
        {
            "user_id": ["u1", "u0", "u0", "u1"],
            "item_id": ["b", "a", "a", "c"],
            "weight": [1.0, 2.0, 0.5, 4.0],
            "purchases": [0, 1, 1, 2],
            "last_purchase_ts": [None, dt.datetime(2024, 2, 28, 12), dt.datetime(2024, 2, 20), dt.datetime(2024, 2, 29)],
        }
    )
    popularity = pl.DataFrame({"item_id": ["a", "d"], "recent_popularity": [3.0, 1.0]})
    users = pl.DataFrame({"user_id": ["u0", "u2"], "segment": ["UK", "FR"]})
    sequences = pl.DataFrame({"user_id": ["u0", "u0", "u1"], "item_id": ["c", "a", "b"], "position": [1, 0, 0]})
    data = TrainingData.from_frames(interactions, AS_OF, popularity, users, sequences=sequences)
    assert data.users == ["u0", "u1", "u2"]
    assert data.items == ["a", "b", "c", "d"]
    np.testing.assert_allclose(data.interactions.toarray(), [[2.5, 0, 0, 0], [0, 1, 4, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(data.purchases.toarray(), [[2, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    assert data.last_purchase_age_days[0, 0] == pytest.approx(1.5)  # latest purchase wins
    assert data.last_purchase_age_days[1, 2] == pytest.approx(1.0)
    np.testing.assert_allclose(data.recent_popularity, [3, 0, 0, 1])
    assert list(data.user_segment) == ["UK", "", "FR"]
    assert [list(s) for s in data.user_sequences] == [[0, 2], [1], []]


def test_from_frames_rejects_ids_outside_the_given_lists():
    interactions = pl.DataFrame({"user_id": ["u0"], "item_id": ["zz"], "weight": [1.0]})
    with pytest.raises(ValueError, match="outside"):
        TrainingData.from_frames(interactions, AS_OF, item_ids=["a"])


def test_missing_segment_reads_as_empty(data):
    segments = np.array(["UK", None, "FR", ""], dtype=object)
    rebuilt = TrainingData(data.users, data.items, data.interactions, data.purchases, None,
                           data.recent_popularity, segments, AS_OF)
    assert list(rebuilt.user_segment) == ["UK", "", "FR", ""]


def test_training_data_checks_shapes(data):
    with pytest.raises(ValueError, match="recent_popularity"):
        TrainingData(data.users, data.items, data.interactions, data.purchases, None, np.ones(3), data.user_segment, AS_OF)


# ---------------------------------------------------------------- models


def test_registry_builds_every_model_and_rejects_unknown_names():
    assert set(MODELS) == {"popularity", "segment_popularity", "repeat", "itemknn", "ease", "gbdt"}
    for name, cls in MODELS.items():
        model = build_model(name)
        assert isinstance(model, cls) and cls.name == name and cls.scale_limits
    with pytest.raises(ValueError, match="unknown model"):
        build_model("nope")


def test_popularity_scores_every_user_alike(data):
    scores = fitted("popularity", data).score(ALL_USERS)
    assert scores.dtype == np.float32 and scores.shape == (4, 5)
    np.testing.assert_array_equal(scores, np.tile(POPULARITY.astype(np.float32), (4, 1)))


def test_segment_popularity_ranks_by_segment_then_overall(data):
    model = fitted("segment_popularity", data, min_users=2)
    items, _ = top_k(model, ALL_USERS, 5)
    # UK users (0, 1) together weight a=4, b=2, c=1; overall order breaks the tie between d and e
    assert list(items[0]) == [0, 1, 2, 3, 4]
    assert list(items[1]) == [0, 1, 2, 3, 4]
    # FR has one user (< min_users) and user 3 has no segment: overall popularity, ties by item index
    assert list(items[2]) == [0, 1, 2, 3, 4] and list(items[3]) == [0, 1, 2, 3, 4]
    assert model.explain(0, np.array([1]))[0].segment == "UK"
    assert model.explain(3, np.array([1]))[0].strategy == "popularity"


def test_repeat_orders_own_items_by_count_then_popularity_then_recency(data):
    model = fitted("repeat", data)
    items, _ = top_k(model, ALL_USERS, 5)
    # user 0 bought a and b twice each: a is more popular; then c (pop 3, index 2), d, e
    assert list(items[0]) == [0, 1, 2, 3, 4]
    # user 3 bought d 4x and c 1x; then the rest by popularity
    assert list(items[3]) == [3, 2, 0, 1, 4]
    # user 2 bought nothing: popularity order
    assert list(items[2]) == [0, 1, 2, 3, 4]


def test_repeat_breaks_remaining_ties_by_recency():
    purchases = sp.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32))
    ages = sp.csr_matrix(np.array([[9, 2, 0]], dtype=np.float32))
    data = TrainingData(["u"], ["a", "b", "c"], purchases, purchases, ages, np.zeros(3), np.array([""]), AS_OF)
    assert list(top_k(fitted("repeat", data), [0], 3)[0][0]) == [1, 0, 2]
    assert list(top_k(fitted("repeat", data, use_recency=False), [0], 3)[0][0]) == [0, 1, 2]


def test_repeat_explains_count_and_days(data):
    evidence = fitted("repeat", data).explain(3, np.array([3, 0]))
    assert (evidence[0].strategy, evidence[0].count, evidence[0].days_since) == ("repeat", 4, 2)
    assert evidence[1].strategy == "popularity"


def cosine_by_hand(x: np.ndarray) -> np.ndarray:
    norms = np.sqrt((x * x).sum(axis=0))
    norms[norms == 0] = 1
    w = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(w, 0)
    return w


def test_itemknn_cosine_equals_hand_values():
    x = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]], dtype=np.float32)
    data = TrainingData(["u0", "u1", "u2"], ["a", "b", "c"], sp.csr_matrix(x), sp.csr_matrix(x.shape),
                        None, np.zeros(3), np.array(["", "", ""]), AS_OF)
    model = fitted("itemknn", data, neighbours=None)
    expected = np.array([[0, 2 / np.sqrt(6), 2 / np.sqrt(6)], [2 / np.sqrt(6), 0, 1 / 2], [2 / np.sqrt(6), 1 / 2, 0]])
    np.testing.assert_allclose(model.similarity.toarray(), expected, rtol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(3)), x @ expected, rtol=1e-6)
    # one neighbour per item: item a's two equal neighbours keep the lower index
    pruned = fitted("itemknn", data, neighbours=1).similarity.toarray()
    assert np.count_nonzero(pruned, axis=1).tolist() == [1, 1, 1]
    assert pruned[0, 1] > 0 and pruned[1, 0] > 0 and pruned[2, 0] > 0


def test_itemknn_binary_and_weighted_inputs(data):
    binary = fitted("itemknn", data, neighbours=None, binary=True)
    weighted = fitted("itemknn", data, neighbours=None, binary=False)
    x = WEIGHTS.astype(np.float64)
    np.testing.assert_allclose(binary.similarity.toarray(), cosine_by_hand((x > 0).astype(float)), rtol=1e-6)
    np.testing.assert_allclose(weighted.similarity.toarray(), cosine_by_hand(x), rtol=1e-6)
    np.testing.assert_allclose(weighted.score(ALL_USERS), x @ cosine_by_hand(x), rtol=1e-5)


def ease_by_hand(x: np.ndarray, lam: float) -> np.ndarray:
    gram = x.T @ x + lam * np.eye(x.shape[1])
    p = np.linalg.solve(gram, np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)
    np.fill_diagonal(b, 0)  # already zero up to rounding
    return b


@pytest.mark.parametrize("binary", [True, False])
def test_ease_equals_a_direct_solve(data, binary):
    model = fitted("ease", data, lam=2.0, max_items=None, binary=binary)
    x = WEIGHTS.astype(np.float64)
    x = (x > 0).astype(float) if binary else x
    b = ease_by_hand(x, 2.0)
    np.testing.assert_allclose(model.weights, b, atol=1e-6)
    np.testing.assert_allclose(model.score(ALL_USERS), x @ b, atol=1e-5)


def test_ease_fits_the_most_popular_items_only(data):
    model = fitted("ease", data, lam=2.0, max_items=3)
    # users per item: a 3, b 2, c 3, d 1, e 0 -> keep a, b, c
    assert model.kept_items.tolist() == [0, 1, 2]
    scores = model.score(ALL_USERS)
    assert np.isneginf(scores[:, 3:]).all()
    x = (WEIGHTS[:, :3] > 0).astype(float)
    np.testing.assert_allclose(scores[:, :3], x @ ease_by_hand(x, 2.0), atol=1e-5)


def test_ease_torch_solve_equals_numpy(data):
    pytest.importorskip("torch")
    numpy_model = fitted("ease", data, lam=3.0)
    torch_model = fitted("ease", data, lam=3.0, device="cpu")
    np.testing.assert_allclose(torch_model.weights, numpy_model.weights, atol=1e-6)


@pytest.mark.parametrize("name", ["itemknn", "ease"])
def test_explain_cites_the_strongest_history_item(data, name):
    model = fitted(name, data, **({"neighbours": None} if name == "itemknn" else {"lam": 1.0}))
    x = model.user_items.toarray()
    weights = model.similarity.toarray() if name == "itemknn" else model.weights
    for user in ALL_USERS:
        history = set(np.flatnonzero(WEIGHTS[user]))
        items = np.array([i for i in range(4) if i not in history])
        for item, evidence in zip(items, model.explain(int(user), items)):
            assert evidence.strategy == name
            contributions = x[user] * weights[:, item]
            if contributions.max() > 0:
                assert evidence.because_item in history
                assert evidence.because_item == int(np.argmax(contributions))
            else:
                assert evidence.because_item is None


def test_popularity_explains_strategy_only(data):
    evidence = fitted("popularity", data).explain(0, np.array([0, 3]))
    assert [e.strategy for e in evidence] == ["popularity", "popularity"]
    assert evidence[0].because_item is None


@pytest.mark.parametrize(
    "name, params",
    [
        ("popularity", {}),
        ("segment_popularity", {"min_users": 2}),
        ("repeat", {}),
        ("itemknn", {"neighbours": 2, "binary": False}),
        ("ease", {"lam": 1.5, "max_items": 4}),
    ],
)
def test_save_load_round_trip_gives_identical_scores(tmp_path, data, name, params):
    model = fitted(name, data, **params)
    model.save(tmp_path / name)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["arrays.npz", "model.json"]
    assert json.loads((tmp_path / name / "model.json").read_text())["params"] == model.get_params()
    for loaded in (MODELS[name].load(tmp_path / name), load_model(tmp_path / name)):
        assert type(loaded) is type(model) and loaded.items == data.items and loaded.users == data.users
        np.testing.assert_array_equal(loaded.score(ALL_USERS), model.score(ALL_USERS))
        assert loaded.explain(3, np.array([0, 2])) == model.explain(3, np.array([0, 2]))


def test_load_refuses_another_kind_of_model(tmp_path, data):
    fitted("popularity", data).save(tmp_path)
    with pytest.raises(ValueError, match="popularity"):
        EASE.load(tmp_path)


def test_unfitted_model_refuses_to_score():
    for cls in (Popularity, Repeat, ItemKNN, EASE, SegmentPopularity):
        with pytest.raises(RuntimeError, match="not fitted"):
            cls().score(np.arange(2))


# ---------------------------------------------------------------- top-k


class FixedScores:
    """A stand-in model that returns rows of a fixed score matrix (NumPy, like the baselines)."""

    def __init__(self, scores: np.ndarray):
        self.scores = scores.astype(np.float32)

    def score(self, user_idx):
        return self.scores[np.asarray(user_idx)]


class FixedTensorScores(FixedScores):
    """The same, also scoring in torch (like the language-model models), so top_k selects with torch."""

    def score_tensor(self, user_idx):
        import torch

        return torch.tensor(self.score(user_idx))


@pytest.fixture(params=[FixedScores, FixedTensorScores], ids=["numpy", "torch"])
def scorer(request):
    return request.param


def brute_force_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Best first, equal scores by item index, -inf dropped and padded with -1."""
    out = np.full((len(scores), k), -1)
    for row, s in enumerate(scores):
        order = [i for i in np.lexsort((np.arange(len(s)), -s)) if np.isfinite(s[i])][:k]
        out[row, : len(order)] = order
    return out


@pytest.fixture
def tied_scores() -> np.ndarray:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 4, size=(9, 12)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    scores[8, :] = -np.inf
    scores[8, [3, 5]] = [1.0, 2.0]
    return scores


def assert_exact(items, values, scores, k):
    expected = brute_force_top_k(scores, k)
    np.testing.assert_array_equal(items, expected)
    finite = expected >= 0
    np.testing.assert_array_equal(values[finite], np.take_along_axis(scores, np.maximum(expected, 0), 1)[finite])
    assert np.isneginf(values[~finite]).all()


@pytest.mark.parametrize("k", [1, 3, 5, 12, 15])
def test_top_k_is_exact_with_ties_by_item_index(tied_scores, k, scorer):
    items, values = top_k(scorer(tied_scores), np.arange(9), k)
    assert_exact(items, values, tied_scores, k)
    assert list(items[8]) == ([5, 3] + [-1] * k)[:k]  # two finite items, then padding


@pytest.mark.parametrize("k", [1, 10, 20])
def test_top_k_is_exact_on_larger_rows_with_and_without_ties_at_the_cut(k, scorer):
    """Rows the partial sort settles alone (ties only inside the k best) and rows it hands to the exact path."""
    rng = np.random.default_rng(11)
    scores = rng.standard_normal((64, 300)).astype(np.float32)
    best = np.argsort(-scores, axis=1)
    rows = np.arange(64)[:, None]
    scores[rows[:16], best[:16, : max(k - 1, 1)]] = 5.0  # equal scores within the k best
    scores[rows[16:32], best[16:32, :40]] = 3.0  # equal scores across the k-th place
    scores[32:40, 100:] = -np.inf  # rows with fewer finite scores than k (k = 20 keeps them all)
    scores[40:44, 3:] = -np.inf
    items, values = top_k(scorer(scores), np.arange(64), k, chunk=10)
    assert_exact(items, values, scores, k)


@pytest.mark.parametrize("chunk", [1, 2, 4, 2048])
def test_top_k_does_not_depend_on_the_chunk(tied_scores, chunk, scorer):
    users = np.array([8, 0, 3, 3, 5, 1])
    reference = top_k(FixedScores(tied_scores), users, 4, chunk=3)
    result = top_k(scorer(tied_scores), users, 4, chunk=chunk)
    np.testing.assert_array_equal(result[0], reference[0])
    np.testing.assert_array_equal(result[1], reference[1])


def test_top_k_chunks_stay_under_the_byte_cap(monkeypatch, tied_scores):
    seen = []

    class Counting(FixedScores):
        items = [str(i) for i in range(12)]

        def score(self, user_idx):
            seen.append(len(user_idx))
            return super().score(user_idx)

    monkeypatch.setattr(topk_module, "CHUNK_BYTES", 4 * 12 * 3)  # three users' scores
    items, _ = top_k(Counting(tied_scores), np.arange(9), 4)
    assert seen == [3, 3, 3]
    np.testing.assert_array_equal(items, brute_force_top_k(tied_scores, 4))


def test_top_k_excludes_by_user_row(tied_scores, scorer):
    exclude = sp.lil_matrix(tied_scores.shape)
    exclude[2, :6] = 1
    users = np.array([2, 0])
    items, _ = top_k(scorer(tied_scores), users, 5, exclude=exclude.tocsr())
    masked = tied_scores.copy()
    masked[2, :6] = -np.inf
    np.testing.assert_array_equal(items, brute_force_top_k(masked[users], 5))
    assert not set(items[0]) & set(range(6))


def test_top_k_ignores_nan_and_numpy_ties_return_the_same_scores(tied_scores, scorer):
    scores = tied_scores.copy()
    scores[0, 0] = np.nan
    items, _ = top_k(scorer(scores), np.arange(9), 5)
    assert 0 not in items[0]
    _, by_index = top_k(scorer(tied_scores), np.arange(9), 5)
    _, by_numpy = top_k(scorer(tied_scores), np.arange(9), 5, ties="numpy")
    np.testing.assert_array_equal(by_numpy, by_index)
    with pytest.raises(ValueError, match="ties"):
        top_k(scorer(tied_scores), np.arange(2), 5, ties="random")


def test_top_k_on_a_real_model_excludes_history(data):
    model = fitted("ease", data, lam=1.0)
    items, values = top_k(model, ALL_USERS, 3, exclude=data.interactions)
    for user in ALL_USERS:
        assert not set(items[user][items[user] >= 0]) & set(np.flatnonzero(WEIGHTS[user]))
    assert (np.diff(values, axis=1) <= 0).all()

"""The blend of two models: log-probabilities added with weights, saved with its parts, served only when better."""
import numpy as np
import pytest

from recsys_tasks.config import Settings
from recsys_tasks.models import Blend, build_model, load_model, top_k
from recsys_tasks.models.base import log_softmax_rows
from recsys_tasks.models.next_purchase import purchase_log_probabilities
from recsys_tasks.training import blend_grid, choose
from tests.unit.test_next_purchase import N_USERS, SMALL, shop

USERS = np.arange(N_USERS)


@pytest.fixture(scope="module")
def data():
    return shop()


@pytest.fixture(scope="module")
def parts(data):
    return {"gbdt": build_model("gbdt", **SMALL).fit(data), "ease": build_model("ease", lam=10.0).fit(data),
            "repeat": build_model("repeat").fit(data), "popularity": build_model("popularity").fit(data)}


def test_log_softmax_rows_are_log_probabilities_and_keep_minus_infinity():
    scores = np.array([[1.0, 2.0, -np.inf], [-np.inf, -np.inf, -np.inf], [1000.0, 0.0, 999.0]], np.float32)
    out = log_softmax_rows(scores)
    assert np.isclose(np.exp(out[0]).sum(), 1.0) and np.isclose(np.exp(out[2]).sum(), 1.0)
    assert np.isneginf(out[0, 2]) and np.isneginf(out[1]).all() and not np.isnan(out).any()
    assert np.isclose(out[0, 1] - out[0, 0], 1.0)  # differences of scores survive


def test_log_softmax_rows_match_a_float64_reference_and_leave_the_input_alone():
    from scipy.special import log_softmax

    rng = np.random.default_rng(3)
    scores = (rng.standard_normal((50, 300)) * 5).astype(np.float32)
    scores[:, ::4] = -np.inf
    scores[7, 3], scores[9, 5] = np.nan, np.inf  # not scores: treated as unscored, like -inf
    before = scores.copy()
    out = log_softmax_rows(scores)
    unscored = ~np.isfinite(scores)
    expected = log_softmax(np.where(unscored, -np.inf, scores.astype(np.float64)), axis=1)
    assert out.dtype == np.float32 and np.array_equal(np.isneginf(out), unscored)
    np.testing.assert_allclose(out[~unscored], expected[~unscored], rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(scores, before)


def test_gbdt_log_scores_are_its_probabilities_with_every_other_item_below(parts):
    gbdt = parts["gbdt"]
    scores, logp = gbdt.score(USERS), gbdt.log_scores(USERS)
    candidate = scores >= 1.0
    assert np.allclose(logp[candidate], np.log(np.clip(scores[candidate] - 1.0, 1e-9, None)), atol=1e-5)
    for u in USERS:
        others = ~candidate[u]
        if others.any():
            assert logp[u, others].max() < logp[u, candidate[u]].min()
            floor = logp[u, candidate[u]].min() if candidate[u].any() else np.log(1e-9)
            np.testing.assert_allclose(logp[u, others], floor - 1.0 - (1.0 - scores[u, others]), atol=1e-5)
            # non-candidates keep their popularity order
            assert (np.argsort(-logp[u, others], kind="stable") == np.argsort(-scores[u, others], kind="stable")).all()


def test_purchase_log_probabilities_floor_each_users_others_below_their_own_least_likely_candidate():
    scores = np.array([[1.5, 0.2, 1.1, 0.7],  # candidates 0.5 and 0.1: the others sit below log 0.1
                       [0.3, 1.8, 0.9, 0.1],  # one candidate, 0.8
                       [0.4, 0.6, 0.2, 0.0]], np.float32)  # none: below log 1e-9
    out = purchase_log_probabilities(scores)
    floors = np.log([0.1, 0.8, 1e-9])
    expected = floors[:, None] - 1.0 - (1.0 - scores.astype(np.float64))
    expected[0, [0, 2]] = np.log([0.5, 0.1])
    expected[1, 1] = np.log(0.8)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dtype == np.float32


def test_blend_adds_the_weighted_log_probabilities_of_its_parts(parts):
    blend = Blend.of([parts["gbdt"], parts["ease"]], [3.0, 1.0])
    assert blend.weights == [0.75, 0.25]
    expected = 0.75 * parts["gbdt"].log_scores(USERS) + 0.25 * parts["ease"].log_scores(USERS)
    assert np.allclose(blend.score(USERS), expected, atol=1e-5)
    # all the weight on one part: that part's own ranking
    alone = Blend.of([parts["gbdt"], parts["ease"]], [1.0, 0.0])
    assert (top_k(alone, USERS, 10)[0] == top_k(parts["gbdt"], USERS, 10)[0]).all()
    # a second part changes the lists
    assert (top_k(blend, USERS, 10)[0] != top_k(parts["gbdt"], USERS, 10)[0]).any()


def test_fitting_a_blend_fits_its_parts_like_fitting_them_alone(data, parts):
    blend = Blend(parts=[["gbdt", SMALL], ["ease", {"lam": 10.0}]], weights=[0.6, 0.4]).fit(data)
    same = Blend.of([parts["gbdt"], parts["ease"]], [0.6, 0.4])
    assert np.allclose(blend.score(USERS), same.score(USERS), atol=1e-5)
    assert set(blend.fit_report) == {"gbdt", "ease"} and blend.fit_report["gbdt"]["fitted"]


def test_save_and_load_round_trip_with_its_parts(tmp_path, data, parts):
    blend = Blend.of([parts["gbdt"], parts["ease"]], [0.7, 0.3])
    blend.save(tmp_path / "blend")
    assert (tmp_path / "blend" / "part-0-gbdt" / "model.json").exists()
    loaded = load_model(tmp_path / "blend")
    assert isinstance(loaded, Blend) and loaded.weights == blend.weights
    assert np.array_equal(loaded.score(USERS), blend.score(USERS))
    items = np.arange(5)
    assert loaded.explain(3, items) == blend.explain(3, items)


def test_explain_takes_the_heaviest_part_with_a_reason_beyond_popularity(data, parts):
    blend = Blend.of([parts["popularity"], parts["repeat"]], [0.8, 0.2])
    user = 0
    bought = int(data.purchases[user].indices[0])
    never = int(np.flatnonzero(data.purchases[user].toarray().ravel() == 0)[0])
    evidence = blend.explain(user, np.array([bought, never]))
    assert evidence[0].strategy == "repeat" and evidence[0].because_item == bought
    assert evidence[1].strategy == "popularity"


def test_bad_blends_are_refused(data, parts):
    with pytest.raises(ValueError, match="two parts"):
        Blend.of([parts["gbdt"]], [1.0])
    with pytest.raises(ValueError, match="different models"):
        Blend(parts=[["ease", {"lam": 1.0}], ["ease", {"lam": 100.0}]], weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative weight"):
        Blend.of([parts["gbdt"], parts["ease"]], [1.0, -0.5])
    other = build_model("popularity").fit(shop(seed=1))
    other.items = other.items[:-1] + ["not-in-this-shop"]
    with pytest.raises(ValueError, match="other users or items"):
        Blend.of([parts["gbdt"], other], [0.5, 0.5])


def rows(**values):
    return [{"model": m, "track": "all", "metric": "ndcg", "value": v} for m, v in values.items()]


def test_the_blend_is_served_only_when_it_beats_every_single_model():
    settings = Settings(models=("popularity", "gbdt", "teacher"))
    assert choose(rows(popularity=0.1, gbdt=0.3, teacher=0.2, blend=0.31), settings)[0] == "blend"
    assert choose(rows(popularity=0.1, gbdt=0.3, teacher=0.2, blend=0.3), settings)[0] == "gbdt"  # a tie: single
    assert choose(rows(popularity=0.1, gbdt=0.3, teacher=0.2), settings)[0] == "gbdt"


def test_the_weight_grid_comes_from_the_settings_and_bad_values_name_the_setting():
    assert blend_grid(Settings()) == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert blend_grid(Settings(blend_weights="")) == []  # never blend
    with pytest.raises(ValueError, match=r"blend_weights must lie in \[0, 1\]"):
        blend_grid(Settings(blend_weights="0.5,1.5"))
    with pytest.raises(ValueError, match="blend_weights must be comma-separated numbers"):
        blend_grid(Settings(blend_weights="0.5;0.7"))

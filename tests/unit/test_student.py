"""The distilled student on tiny data: one matrix product to score, distillation pulls it to the teacher."""
import logging

import numpy as np
import pytest
import torch

from recsys_tasks.models import load_model, top_k
from recsys_tasks.models.ease import EASE
from recsys_tasks.models.distillation import low_rank_prior
from recsys_tasks.models.student import Student
from recsys_tasks.models.teacher import standardised
from tests.unit.test_teacher import COLD, N_ITEMS, chain_data, one_thread, small_teacher  # noqa: F401 (fixture)


def small_student(**kw) -> Student:
    params = {"dim": 8, "max_len": 6, "epochs": 30, "batch_size": 32, "lr": 0.02, "id_dropout": 0.0,
              "distill_top_n": 5, "device": "cpu", **kw}
    return Student(**params)


@pytest.fixture(scope="module")
def chain():
    return chain_data()


@pytest.fixture(scope="module")
def teacher(chain):
    return small_teacher().fit(chain)


@pytest.fixture(scope="module")
def student(chain, teacher):
    return small_student().with_teacher(teacher).fit(chain)


def overlap_with(teacher, model, users, exclude, k=3) -> float:
    """Return the mean share of the teacher's top-k that the model also puts in its top-k."""
    a, _ = top_k(teacher, users, k, exclude=exclude)
    b, _ = top_k(model, users, k, exclude=exclude)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def test_scores_are_one_matrix_product(chain, student):
    users = np.arange(7)
    scores = student.score(users)
    assert scores.dtype == np.float32 and scores.shape == (7, N_ITEMS) and np.isfinite(scores).all()
    np.testing.assert_allclose(scores, student.user_vectors[users] @ student.item_vectors.T, rtol=1e-6)
    assert student.net is None  # no network is kept: scoring needs only the vectors
    assert student.user_vectors.shape[1] == 8 < 16  # narrower than the teacher


def test_student_learns_the_chain_and_its_loss_falls(chain, student):
    assert student.fit_report["loss_by_epoch"][-1] < student.fit_report["loss_by_epoch"][0]
    top, _ = top_k(student, np.arange(chain.n_users), 1, exclude=chain.interactions)
    last = np.asarray([s[-1] for s in chain.user_sequences])
    taught = last < 9
    assert (top[taught, 0] == last[taught] + 1).mean() > 0.8


def test_distillation_moves_the_student_towards_the_teacher(chain):
    # a teacher that learned another shop (the chain backwards): only distillation can teach the student its lists
    backwards = chain_data()
    backwards.user_sequences = [s[::-1].copy() for s in backwards.user_sequences]
    other = small_teacher(epochs=40).fit(backwards)
    users = np.arange(chain.n_users)
    plain = small_student(distill_weight=0.0).with_teacher(other).fit(chain)
    taught = small_student(distill_weight=1.0, ground_truth_weight=0.1).with_teacher(other).fit(chain)
    assert overlap_with(other, taught, users, chain.interactions) > overlap_with(other, plain, users,
                                                                              chain.interactions) + 0.3


def test_bf16_precision_distils_on_the_cpu_as_on_a_gpu(chain, teacher):
    # the GPU's mixed-precision path (training, distillation, export): the student still follows the chain,
    # its exported vectors are float32 and its scores one finite product
    mixed = small_student(precision="bf16").with_teacher(teacher).fit(chain)
    assert mixed.fit_report["bf16"] and mixed.user_vectors.dtype == np.float32
    assert mixed.fit_report["loss_by_epoch"][-1] < mixed.fit_report["loss_by_epoch"][0]
    assert np.isfinite(mixed.score(np.arange(chain.n_users))).all()
    top, _ = top_k(mixed, np.arange(chain.n_users), 1, exclude=chain.interactions)
    last = np.asarray([s[-1] for s in chain.user_sequences])
    taught = last < 9
    assert (top[taught, 0] == last[taught] + 1).mean() > 0.8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_distils_in_bf16_and_exports_float32_vectors(chain):
    teacher = small_teacher(device="cuda").fit(chain)
    model = small_student(device="cuda").with_teacher(teacher).fit(chain)
    assert model.fit_report["device"].startswith("cuda") and model.user_vectors.dtype == np.float32
    assert model.fit_report["bf16"] == torch.cuda.is_bf16_supported(including_emulation=False)
    top, _ = top_k(model, np.arange(chain.n_users), 1, exclude=chain.interactions)
    last = np.asarray([s[-1] for s in chain.user_sequences])
    taught = last < 9
    assert (top[taught, 0] == last[taught] + 1).mean() > 0.8
    users = np.arange(chain.n_users)  # scored on the GPU and selected there
    on_gpu = model.score_tensor(users)
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
    np.testing.assert_allclose(on_gpu.cpu().numpy(), model.score(users), rtol=1e-4, atol=1e-4)
    items, values = top_k(model, users, 5)  # exact up to the float error between GPU and host products
    host = model.score(users)
    np.testing.assert_allclose(values, np.take_along_axis(host, items, axis=1), rtol=1e-4, atol=1e-4)
    assert (values[:, -1] >= np.sort(host, axis=1)[:, -5] - 1e-4).all()


def test_each_epoch_logs_a_student_progress_line(chain, teacher, caplog):
    with caplog.at_level(logging.INFO, logger="recsys_tasks.models.sequence_training"):
        small_student(epochs=2).with_teacher(teacher).fit(chain)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("student epochs")]
    assert [line.split(" (")[0] for line in lines] == ["student epochs: 1/2 epochs", "student epochs: 2/2 epochs"]


def test_cold_items_get_finite_text_scores(student):
    assert np.isfinite(student.item_vectors[COLD]).all()
    assert np.isfinite(student.score(np.arange(3))[:, COLD]).all()


def test_save_and_load_round_trip(student, tmp_path):
    student.save(tmp_path / "student")
    again = load_model(tmp_path / "student")
    assert isinstance(again, Student)
    np.testing.assert_array_equal(again.score(np.arange(5)), student.score(np.arange(5)))
    assert [e.strategy for e in again.explain(0, np.asarray([2, 3]))] == ["student", "student"]


def test_repeat_bonus_is_sparse_on_the_users_own_items():
    data = chain_data(repeats=True)
    teacher_params = {k: v for k, v in small_teacher(epochs=40).get_params().items()}
    model = small_student(epochs=40, teacher_params=teacher_params).fit(data)  # fits its own teacher first
    assert model.fit_report["repeat_aware"] and model.fit_report["teacher_seconds"] > 0
    bonus = model.repeat_bonus.tocoo()
    owned = data.interactions.tocsr()
    assert bonus.nnz > 0 and all(owned[r, c] > 0 for r, c in zip(bonus.row, bonus.col))
    top, _ = top_k(model, np.arange(data.n_users), 1)
    favourite = np.asarray([s[0] for s in data.user_sequences])
    assert (top[:, 0] == favourite).mean() > 0.8
    users = np.arange(data.n_users)
    in_torch = model.score_tensor(users)  # torch's product and bonus, the GPU's arithmetic, on the CPU too
    assert in_torch.dtype == torch.float32 and in_torch.device.type == "cpu"
    np.testing.assert_allclose(in_torch.numpy(), model.score(users), rtol=1e-5, atol=1e-5)
    cached = model._on_device.get("item vectors", model.item_vectors, torch.device("cpu"))
    model._scores_on(users[:2], torch.device("cpu"))
    again = model._on_device.get("item vectors", model.item_vectors, torch.device("cpu"))
    assert again is cached  # the item vectors are copied to the device once, not per chunk


def test_a_teacher_of_other_users_is_refused(chain, teacher):
    with pytest.raises(ValueError, match="other users or items"):
        small_student().with_teacher(teacher).fit(chain_data(n_users=10))


def test_student_learns_the_teachers_buy_again_term_over_the_whole_history():
    data = chain_data(repeats=True)
    teacher = small_teacher(epochs=5, max_len=2, buy_again_weight=2.0).fit(data)
    model = small_student(epochs=5, max_len=2).with_teacher(teacher).fit(data)
    bought = data.purchases.tocsr()
    bonus = model.repeat_bonus.tocsr()
    # the window holds 2 events, yet every item ever bought carries a bonus
    assert set(zip(*bonus.nonzero())) == set(zip(*bought.nonzero()))


def test_re_buying_shops_also_learn_the_teachers_order_of_items_never_bought():
    # a re-buying shop: the teacher's top lists are the user's own favourites; what it ranks next among the items
    # the user never had is taught by the second list (history hidden), which the new-items track scores
    shop = chain_data(repeats=True)
    other = chain_data(repeats=True, seed=1)  # a teacher that learned another shop's customers
    other.user_sequences = [s[::-1].copy() for s in other.user_sequences]
    teacher = small_teacher(epochs=40, prior_weight=0.0).fit(other)
    assert teacher.uses_repeats
    users = np.arange(shop.n_users)
    shares = {}
    for new in (False, True):
        student = small_student(distill_weight=1.0, ground_truth_weight=0.1, distill_top_n=3, distill_new=new)
        student.with_teacher(teacher)
        shares[new] = overlap_with(teacher, student.fit(shop), users, shop.interactions)
    assert shares[True] > shares[False] + 0.05, shares  # 0.85 vs 0.74 when written


def test_the_carried_prior_at_full_rank_is_the_teachers_standardised_prior(chain):
    prior = EASE(lam=5.0, max_items=8).fit(chain)  # 4 of the 12 items stay outside the prior
    users, items = low_rank_prior(prior, N_ITEMS, rank=8)
    assert users.shape == (chain.n_users, 8) and items.shape == (N_ITEMS, 8)
    outside = np.setdiff1d(np.arange(N_ITEMS), prior.kept_items)
    assert not items[outside].any()  # items the prior does not cover score 0 through it
    exact = np.where(np.isfinite(prior.score(np.arange(chain.n_users))), prior.score(np.arange(chain.n_users)), 0.0)
    expected = standardised(exact)  # the teacher adds its prior standardised per user (over every item)
    got = users @ items.T
    np.testing.assert_allclose(got - got.mean(axis=1, keepdims=True), expected, atol=2e-3)
    low, _ = low_rank_prior(prior, N_ITEMS, rank=2)
    assert low.shape[1] == 2


def test_a_student_carrying_the_prior_scores_with_one_wider_product_and_boosts_only_the_prior(chain, tmp_path):
    teacher = small_teacher(epochs=5, prior_weight=1.0, prior_lambda=5.0).fit(chain)
    model = small_student(epochs=5, prior_rank=4).with_teacher(teacher).fit(chain)
    assert model.user_vectors.shape[1] == model.item_vectors.shape[1] == 8 + 4
    assert model.fit_report["prior_rank"] == 4 and np.isfinite(model.fit_report["prior_weight"])
    users = np.arange(9)
    before = model.score(users)
    np.testing.assert_allclose(before, model.user_vectors[users] @ model.item_vectors.T, rtol=1e-6)
    network = model.user_vectors[users, :8] @ model.item_vectors[:, :8].T
    model.set_prior_boost(3.0)
    np.testing.assert_allclose(model.score(users) - network, 3.0 * (before - network), rtol=1e-4, atol=1e-5)
    model.save(tmp_path / "student")
    again = load_model(tmp_path / "student")
    assert again.prior_boost == 3.0 and again.prior_weight == pytest.approx(model.prior_weight)
    np.testing.assert_array_equal(again.score(users), model.score(users))
    no_prior = small_student(epochs=1, prior_rank=4).with_teacher(small_teacher(epochs=1).fit(chain)).fit(chain)
    assert no_prior.user_vectors.shape[1] == 8 and no_prior.fit_report["prior_weight"] is None  # nothing to carry


def test_carrying_the_prior_brings_the_student_closer_to_a_prior_led_teacher_on_items_never_bought():
    # the teacher's lists of items a loyal customer never had come mostly from its item-item prior (as on B);
    # a small student without it matches them less well than one that carries it
    shop = chain_data(repeats=True)
    teacher = small_teacher(epochs=5, prior_weight=3.0, prior_lambda=1.0).fit(shop)
    users = np.arange(shop.n_users)
    shares = {}
    for rank in (0, 11):
        student = small_student(dim=4, distill_weight=1.0, ground_truth_weight=0.1, distill_top_n=3, prior_rank=rank)
        shares[rank] = overlap_with(teacher, student.with_teacher(teacher).fit(shop), users, shop.interactions)
    assert shares[11] > shares[0] + 0.05, shares  # 0.91 vs 0.72 when written (seeds 1-3: 0.89-0.91 vs 0.64-0.71)


@pytest.mark.parametrize("bad", [{"prior_rank": -1}, {"prior_rank": 2.5}, {"prior_boost": -0.5},
                                 {"prior_boost": float("nan")}, {"prior_boost": 0.0}])
def test_bad_prior_settings_are_refused_by_name(bad, student):
    with pytest.raises(ValueError, match="student_prior_rank.*student_prior_boost"):
        small_student(**bad)
    if "prior_boost" in bad:  # also when a fitted student is re-served
        with pytest.raises(ValueError, match="student_prior_boost"):
            student.set_prior_boost(bad["prior_boost"])

"""The teacher and its parts on tiny data on the CPU: shapes, masking, learning, repeats, save/load, cold items."""
import datetime as dt
import logging

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_tasks.models import TrainingData, build_model, load_model, model_names, top_k
from recsys_tasks.models.item_inputs import tower_inputs
from recsys_tasks.models.sequence_net import RepeatHead, TransformerEncoder, mask_seen, window_loss
from recsys_tasks.models.sequences import last_windows, running_counts, training_windows
from recsys_tasks.models.device import (DeviceCopies, _warn_emulated_cpu_bf16, add_sparse, cpu_has_native_bf16,
                                        uses_bf16)
from recsys_tasks.models.teacher import Teacher, standardised, standardised_tensor

N_ITEMS = 12
COLD = 11  # never bought by anyone


def chain_data(n_users: int = 60, repeats: bool = False, seed: int = 0) -> TrainingData:
    """Users walk the chain 0 -> 1 -> ... -> 10 from a random start (or re-buy a favourite); item 11 is never bought."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(n_users):
        start = int(rng.integers(0, 7))
        seq = list(range(start, start + 4))
        if repeats:  # a loyal customer: back to a favourite after every other item
            favourite, *others = rng.choice(COLD, size=4, replace=False).tolist()
            seq = [favourite, others[0], favourite, others[1], favourite, others[2]]
        sequences.append(np.asarray(seq, dtype=np.int64))
    rows = np.repeat(np.arange(n_users), [len(s) for s in sequences])
    cols = np.concatenate(sequences)
    counts = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(n_users, N_ITEMS))
    text = rng.normal(size=(N_ITEMS, 16)).astype(np.float32)
    text[COLD] = text[3] + 0.01  # the cold item reads like item 3
    return TrainingData(
        users=[f"u{u}" for u in range(n_users)], items=[f"i{i}" for i in range(N_ITEMS)],
        interactions=counts, purchases=counts if repeats else sp.csr_matrix(counts.shape),
        last_purchase_age_days=None, recent_popularity=np.asarray(counts.sum(axis=0)).ravel(),
        user_segment=np.full(n_users, ""), as_of=dt.date(2024, 3, 1), item_text_embedding=text,
        item_attributes={"brand": np.asarray(["a", "b"] * (N_ITEMS // 2), dtype=object),
                         "price": np.linspace(1, 100, N_ITEMS),
                         "image_embedding": rng.normal(size=(N_ITEMS, 4)).astype(np.float32)},
        user_sequences=sequences,
    )


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread than on a busy pair."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_teacher(**kw) -> Teacher:
    params = {"dim": 16, "layers": 1, "heads": 2, "max_len": 6, "epochs": 30, "batch_size": 32, "lr": 0.01,
              "dropout": 0.0, "id_dropout": 0.0, "device": "cpu", **kw}
    return Teacher(**params)


@pytest.fixture(scope="module")
def chain() -> TrainingData:
    return chain_data()


@pytest.fixture(scope="module")
def fitted(chain) -> Teacher:
    return small_teacher().fit(chain)


def test_registry_knows_the_language_models():
    assert {"teacher", "student"} <= set(model_names())
    assert isinstance(build_model("teacher", dim=8), Teacher)


def test_windows_are_left_padded_and_every_position_predicts_the_next_events():
    w = training_windows([np.asarray([4, 5, 6]), np.asarray([7])], max_len=4, target_window=2)
    assert len(w) == 1  # a single event predicts nothing
    np.testing.assert_array_equal(w.tokens[0], [0, 0, 5, 6])  # items 4, 5 as tokens 5, 6; item 6 is only a target
    np.testing.assert_array_equal(w.targets[0, 2:], [[5, 6], [6, -1]])
    assert (w.targets[0, :2] == -1).all()
    long = training_windows([np.arange(10)], max_len=4)
    assert sorted(np.concatenate([t[t > 0] for t in long.tokens]).tolist()) == list(range(1, 10))  # each input once


def test_running_counts_and_last_windows():
    np.testing.assert_array_equal(running_counts(np.asarray([3, 1, 3, 3, 1])), [1, 1, 2, 3, 2])
    tokens, counts, ages = last_windows([np.asarray([3, 1, 3]), np.zeros(0, np.int64)], np.asarray([0, 1]), 4,
                                        [np.asarray([9.0, 5.0, 1.0]), np.zeros(0)])
    np.testing.assert_array_equal(tokens, [[0, 4, 2, 4], [0, 0, 0, 0]])
    np.testing.assert_array_equal(counts[0], [0, 1, 1, 2])
    np.testing.assert_array_equal(ages[0], [0, 9, 5, 1])


def test_timed_targets_are_the_items_of_the_next_days_after_each_basket():
    # two baskets on day 10 (ages 10), one on day 8, one on day 1 (ages fall towards the cut-off)
    seq = np.asarray([1, 2, 3, 1, 4])
    ages = np.asarray([10.0, 10.0, 8.0, 8.0, 1.0], dtype=np.float32)
    w = training_windows([seq], max_len=4, target_window=3, ages=[ages], horizon_days=8)
    targets = w.targets[0]  # inputs are events 0..3 (the last event is only a target)
    assert (targets[0] == -1).all()  # not the end of its basket
    np.testing.assert_array_equal(targets[1], [3, 1, -1])  # after age 10: the age-8 basket; age 1 is 9 days on
    assert (targets[2] == -1).all()
    np.testing.assert_array_equal(targets[3], [4, -1, -1])  # after age 8: the age-1 basket, 7 days on


def test_transformer_is_causal_and_ignores_padding():
    torch.manual_seed(0)
    enc = TransformerEncoder(dim=8, max_len=5, layers=2, heads=2, dropout=0.0).eval()
    emb = torch.randn(1, 5, 8)
    tokens = torch.tensor([[0, 0, 3, 4, 5]])
    out = enc(emb, tokens)
    changed = emb.clone()
    changed[0, 4] += 10  # a later event must not change earlier states
    assert torch.allclose(enc(changed, tokens)[0, :4], out[0, :4], atol=1e-6)
    padded = emb.clone()
    padded[0, :2] = torch.randn(2, 8)  # whatever sits in the padding is never read by a real event
    assert torch.allclose(enc(padded, tokens)[0, 2:], out[0, 2:], atol=1e-6)
    assert torch.isfinite(out).all()


def test_repeat_head_counts_an_item_once_at_its_newest_occurrence():
    head = RepeatHead(dim=4)
    with torch.no_grad():
        head.table.copy_(torch.arange(12 * 16, dtype=torch.float32).view(12, 16))
    tokens = torch.tensor([[0, 7, 8, 7]])
    counts = torch.tensor([[0.0, 1, 1, 2]])
    cols = torch.tensor([3, 2])
    lag = cols[:, None] - torch.arange(4)[None, :]  # events since each event, seen from each query
    bonus = head(tokens, counts, lag, torch.zeros(2, 4), torch.tensor([0, 0]), cols, torch.zeros(2, 4))
    # from the newest position: the first 7 is superseded by the second (count 2 -> bucket 1, lag 0)
    assert bonus[0, 0] == 0 and bonus[0, 1] == 0 and bonus[0, 3] == head.table[1, 0] and bonus[0, 2] == head.table[0, 1]
    # from position 2 the second 7 lies in the future: the first counts (count 1, lag 1)
    assert bonus[1, 3] == 0 and bonus[1, 1] == head.table[0, 1] and bonus[1, 2] == head.table[0, 0]


def test_mask_seen_hides_history_but_not_the_target():
    logits = torch.zeros(1, 5)
    tokens = torch.tensor([[0, 2, 3]])  # items 1 and 2
    position = torch.arange(-1, 5)
    masked = mask_seen(logits, tokens, position, torch.tensor([0]), torch.tensor([2]), torch.tensor([[2, -1]]))
    assert torch.isinf(masked[0, 1]) and torch.isfinite(masked[0, 2]) and torch.isfinite(masked[0, [0, 3, 4]]).all()
    assert torch.isfinite(window_loss(masked, torch.tensor([[2, -1]])))


def test_attributes_become_codes_buckets_and_dense_inputs():
    cat, dense = tower_inputs({"brand": np.asarray(["x", "x", "", "solo"], dtype=object),
                               "price": np.asarray([1.0, np.nan, 3.0, 4.0]),
                               "image embedding": np.ones((4, 3), np.float32)}, 4)
    assert cat["brand"][0].tolist() == [1, 1, 0, 0] and cat["brand"][1] == 2  # missing and rare values share 0
    assert cat["price"][0][1] == 0 and (cat["price"][0][[0, 2, 3]] > 0).all()
    assert dense["image_embedding"].shape == (4, 3)


def test_training_lowers_the_loss_and_learns_the_chain(chain, fitted):
    losses = fitted.fit_report["loss_by_epoch"]
    assert losses[-1] < 0.5 * losses[0]
    users = np.arange(chain.n_users)
    top, _ = top_k(fitted, users, 1, exclude=chain.interactions)
    last = np.asarray([s[-1] for s in chain.user_sequences])
    taught = last < 9  # 9 -> 10 never happens in the data
    assert (top[taught, 0] == last[taught] + 1).mean() > 0.9


def test_scores_are_float32_and_finite_for_cold_items(chain, fitted):
    scores = fitted.score(np.arange(5))
    assert scores.dtype == np.float32 and scores.shape == (5, N_ITEMS)
    assert np.isfinite(scores).all()
    assert fitted.net.tower.id_known[COLD] == 0  # the cold item is scored through its text and attributes alone


def test_save_and_load_give_the_same_scores(chain, fitted, tmp_path):
    fitted.save(tmp_path / "teacher")
    again = load_model(tmp_path / "teacher")
    assert isinstance(again, Teacher)
    np.testing.assert_allclose(again.score(np.arange(10)), fitted.score(np.arange(10)), rtol=1e-5, atol=1e-5)
    assert again.explain(0, np.asarray([1, 2]))[0].strategy == "teacher"


def test_repeat_awareness_turns_on_for_re_buyers_and_ranks_the_regular_item_first():
    data = chain_data(repeats=True)
    model = small_teacher(epochs=40).fit(data)
    assert model.fit_report["repeat_aware"]
    top, _ = top_k(model, np.arange(data.n_users), 1)
    favourite = np.asarray([s[0] for s in data.user_sequences])
    assert (top[:, 0] == favourite).mean() > 0.8
    evidence = model.explain(0, np.asarray([favourite[0]]))[0]
    assert evidence.strategy == "repeat" and evidence.count == 3


def test_prior_blends_standardised_scores(chain):
    model = small_teacher(epochs=1, prior_weight=0.5).fit(chain)
    scores = model.score(np.arange(3))
    assert np.isfinite(scores).all() and model.prior is not None
    z = standardised(np.asarray([[1.0, 2.0, -np.inf]], np.float32))
    assert np.isfinite(z).all() and abs(float(z.mean())) < 1e-6


def test_each_epoch_logs_progress_with_loss_rate_and_eta(chain, caplog):
    with caplog.at_level(logging.INFO, logger="recsys_tasks.models.sequence_training"):
        small_teacher(epochs=2, prior_weight=0.0).fit(chain)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("teacher epochs")]
    assert len(lines) == 2
    assert lines[0].startswith("teacher epochs: 1/2 epochs (50%) at ") and ", ETA " in lines[0]
    assert "done in" in lines[1] and "; loss " in lines[1] and " windows/s" in lines[1]


def test_time_budget_stops_training_early(chain):
    model = small_teacher(epochs=10_000, time_budget_s=0.5).fit(chain)
    assert model.fit_report["epochs_run"] < 10_000 and model.fit_report["fit_seconds"] < 30


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_cuda_fit_with_bf16_autocast_scores_like_the_cpu_path(chain):
    model = small_teacher(device="cuda").fit(chain)
    top, _ = top_k(model, np.arange(chain.n_users), 1, exclude=chain.interactions)
    last = np.asarray([s[-1] for s in chain.user_sequences])
    taught = last < 9
    assert model.fit_report["device"].startswith("cuda") and (top[taught, 0] == last[taught] + 1).mean() > 0.9


def test_bf16_precision_runs_the_gpu_mixed_precision_path_on_the_cpu(chain):
    # the CUDA path's autocast (training, scoring), here on the CPU: the chain is learned as in fp32, and the
    # losses differ from fp32's, so the setting did change the arithmetic
    mixed = small_teacher(epochs=15, precision="bf16").fit(chain)
    plain = small_teacher(epochs=15, precision="fp32").fit(chain)
    assert mixed.fit_report["bf16"] and not plain.fit_report["bf16"]
    assert mixed.fit_report["loss_by_epoch"] != plain.fit_report["loss_by_epoch"]
    assert mixed.fit_report["loss_by_epoch"][-1] < mixed.fit_report["loss_by_epoch"][0]
    scores = mixed.score(np.arange(chain.n_users))
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
    top, _ = top_k(mixed, np.arange(chain.n_users), 1, exclude=chain.interactions)
    last = np.asarray([s[-1] for s in chain.user_sequences])
    taught = last < 9
    assert (top[taught, 0] == last[taught] + 1).mean() > 0.9


@pytest.mark.skipif(cpu_has_native_bf16(), reason="this CPU computes bf16 natively")
def test_forcing_bf16_on_a_cpu_that_emulates_it_warns_once(caplog):
    _warn_emulated_cpu_bf16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="recsys_tasks.models.device"):
        assert uses_bf16(torch.device("cpu"), "bf16") and uses_bf16(torch.device("cpu"), "bf16")
        assert not uses_bf16(torch.device("cpu"), "auto")
    assert caplog.text.count("emulated") == 1
    _warn_emulated_cpu_bf16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="recsys_tasks.models.device"):
        caplog.clear()
        small_teacher(precision="bf16", device="cuda")  # a model bound for a GPU: the CPU is not warned about
    assert "emulated" not in caplog.text


def test_unknown_precision_is_refused_by_its_setting_name():
    with pytest.raises(ValueError, match="lm_precision"):
        small_teacher(precision="fp16")


def test_buy_again_term_adds_log_purchases_to_standardised_scores():
    data = chain_data(repeats=True)
    model = small_teacher(epochs=2, buy_again_weight=2.0).fit(data)
    parts = model.components(np.arange(4))
    assert set(parts) == {"logits", "buy_again"}
    expected = standardised(parts["logits"]) + 2.0 * np.log1p(data.purchases[:4].toarray())
    np.testing.assert_allclose(model.score(np.arange(4)), expected, rtol=1e-5, atol=1e-5)
    model.buy_again_weight = 0.0
    np.testing.assert_array_equal(model.score(np.arange(4)), parts["logits"])  # no prior: the raw logits


def test_standardised_tensor_matches_the_numpy_rule_with_unscored_items():
    scores = np.asarray([[1.0, 2.0, -np.inf, 4.0], [-np.inf] * 4, [3.0, 3.0, 3.0, 3.0]], np.float32)
    np.testing.assert_allclose(standardised_tensor(torch.from_numpy(scores)).numpy(), standardised(scores),
                               rtol=1e-6, atol=1e-6)
    assert np.isneginf(scores[0, 2])  # the input is left as it was


def test_device_copies_copy_an_array_once_per_array_and_device_asked_for():
    copies, cpu = DeviceCopies(), torch.device("cpu")
    first = np.arange(6, dtype=np.float32)
    held = copies.get("x", first, cpu)
    assert copies.get("x", first, torch.device("cpu")) is held  # an equal device asked for: no new copy
    assert copies.get("x", first.copy(), cpu) is not held  # another array (a refit): copied again
    out = torch.zeros((2, 3))
    add_sparse(out, sp.csr_matrix(np.array([[0, 2.0, 0], [1.0, 0, 0]], np.float32)), scale=3.0)
    np.testing.assert_array_equal(out.numpy(), [[0, 6.0, 0], [3.0, 0, 0]])


def test_the_device_scoring_path_adds_logits_prior_and_buy_again_like_the_host_path():
    # what score_tensor runs on a GPU (each term computed and added by torch where the logits lie), on the CPU
    data = chain_data(repeats=True)
    model = small_teacher(epochs=3, prior_weight=0.5, prior_max_items=8, buy_again_weight=2.0).fit(data)
    users = np.arange(data.n_users)
    host = model.score(users)
    assert np.isneginf(model.components(users[:5])["prior"]).any()  # items the prior does not cover
    on_device = model._scores_on(users, torch.device("cpu"))
    assert on_device.dtype == torch.float32 and on_device.shape == host.shape
    np.testing.assert_allclose(on_device.numpy(), host, rtol=1e-4, atol=1e-4)
    cached = model._on_device.get("prior weights", model.prior.weights, torch.device("cpu"))
    model._scores_on(users[:2], torch.device("cpu"))
    again = model._on_device.get("prior weights", model.prior.weights, torch.device("cpu"))
    assert again is cached  # the prior's weights are copied to the device once, not per chunk
    model.prior_weight = model.buy_again_weight = 0.0
    np.testing.assert_allclose(model._scores_on(users, torch.device("cpu")).numpy(), model.score(users),
                               rtol=1e-5, atol=1e-5)  # without priors: the raw logits
    model.prior_weight, model.buy_again_weight = 0.5, 2.0
    np.testing.assert_array_equal(model.score_tensor(users).numpy(), on_device.numpy())  # the CPU's own path
    items, values = top_k(model, users, 3)  # selected by torch from those scores: score()'s lists
    np.testing.assert_allclose(values, np.take_along_axis(host, items, axis=1), rtol=1e-4, atol=1e-4)
    assert (values[:, -1] >= np.sort(host, axis=1)[:, -3] - 1e-4).all()


@pytest.mark.gpu
@needs_cuda
def test_cuda_scores_with_prior_and_buy_again_on_the_device_and_selects_there():
    data = chain_data(repeats=True)
    model = small_teacher(epochs=3, prior_weight=0.5, prior_max_items=8, buy_again_weight=2.0,
                          device="cuda", precision="fp32").fit(data)
    users = np.arange(data.n_users)
    on_gpu = model.score_tensor(users)
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
    host = model.score(users)
    np.testing.assert_allclose(on_gpu.cpu().numpy(), host, rtol=1e-4, atol=1e-4)
    items, values = top_k(model, users, 3)  # selected on the GPU: exact up to the float error between the two
    np.testing.assert_allclose(values, np.take_along_axis(host, items, axis=1), rtol=1e-4, atol=1e-4)
    assert (values[:, -1] >= np.sort(host, axis=1)[:, -3] - 1e-4).all()


def test_pipeline_feeds_sequences_ages_text_and_attributes():
    import duckdb

    from recsys_tasks.training_data import item_inputs, user_sequences

    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging; CREATE SCHEMA features")
    con.execute("CREATE TABLE staging.events AS SELECT * FROM (VALUES "
                "('u1', 'a', TIMESTAMP '2024-03-01 10:00', 'e1'), ('u1', 'a', TIMESTAMP '2024-03-01 10:01', 'e2'),"
                "('u1', 'b', TIMESTAMP '2024-03-02 10:00', 'e3'), ('u2', 'b', TIMESTAMP '2024-03-01 09:00', 'e4'),"
                "('u2', 'a', TIMESTAMP '2024-03-05 00:00', 'e5')) AS t(user_id, item_id, event_ts, event_id)")
    sequences, ages = user_sequences(con, dt.datetime(2024, 3, 3), ["u1", "u2"], ["a", "b"])
    assert [s.tolist() for s in sequences] == [[0, 1], [1]]  # a view-then-buy of one item is one step; e5 is later
    np.testing.assert_allclose(ages[0], [1 + 14 / 24, 14 / 24], atol=1e-4)  # days before the cut-off
    con.execute("CREATE TABLE features.item_knowledge AS SELECT * FROM (VALUES "
                "(DATE '2024-03-03', 'a', [1.0, 0.0]::FLOAT[2], 'Mug', 'Acme', ['Home', 'Kitchen'], 'A mug', 'mid',"
                " 'Home > Kitchen', 'Home', [0.5, 0.5]::FLOAT[])) AS t(ds, item_id, text_embedding, title, brand, "
                "category_path, description, price_band, category, top_category, image_embedding)")
    inputs = item_inputs(con, dt.date(2024, 3, 3), ["a", "b"])
    assert inputs.texts[0] == "Mug. Acme. Home > Kitchen. A mug. price mid" and inputs.texts[1] == "b"
    np.testing.assert_array_equal(inputs.text_embedding, [[1.0, 0.0], [0.0, 0.0]])
    assert inputs.attributes["brand"].tolist() == ["Acme", ""]
    np.testing.assert_array_equal(inputs.attributes["image_embedding"], [[0.5, 0.5], [0.0, 0.0]])

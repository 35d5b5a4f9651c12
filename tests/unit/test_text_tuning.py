"""Domain tuning of the bundled MiniLM: the contrastive loss, a few real steps, warm starts and the night's cache."""
import json
from datetime import date

import numpy as np
import pytest
import torch

from recsys_tasks.models.sequences import consecutive_pairs
from recsys_tasks.models.text_tuning import (contrastive_loss, encode_items, last_steps, next_item_ndcg,
                                             night_embeddings, previous_weights, text_gate, tune_encoder)

TEXTS = ["Red ceramic coffee mug", "Blue glass water bottle", "Wooden chopping board", "Steel kitchen knife",
         "Cotton bath towel", "Scented soy candle", "Leather wallet", "Wool winter scarf"]
PAIRS = np.asarray([[0, 4], [1, 5], [2, 6], [3, 7]])  # deliberately unrelated texts bought together


def test_contrastive_loss_prefers_aligned_pairs_and_ignores_copies_of_the_positive():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    ids = torch.arange(4)
    aligned = contrastive_loss(a, a, ids, ids + 10, scale=20.0)
    shuffled = contrastive_loss(a, a[[1, 2, 3, 0]], ids, ids + 10, scale=20.0)
    assert aligned < shuffled
    # the same positive item twice in a batch is not its own negative: the loss stays finite and small
    twice = contrastive_loss(a[[0, 0, 1, 2]], a[[0, 0, 1, 2]], ids, torch.tensor([10, 10, 11, 12]), scale=20.0)
    assert torch.isfinite(twice) and twice < shuffled


def test_consecutive_pairs_are_distinct_and_unordered():
    pairs = consecutive_pairs([np.asarray([1, 2, 1, 3]), np.asarray([2, 1])])
    assert pairs.tolist() == [[1, 2], [1, 3]]


def _pair_loss(model_dir) -> float:
    emb = torch.as_tensor(encode_items(model_dir, TEXTS))
    return float(contrastive_loss(emb[PAIRS[:, 0]], emb[PAIRS[:, 1]], torch.as_tensor(PAIRS[:, 0]),
                                  torch.as_tensor(PAIRS[:, 1]), 20.0))


def test_tuning_pulls_pairs_together_saves_and_warm_starts(tmp_path):
    night1 = tmp_path / "2024-03-01" / "text_encoder"
    report = tune_encoder(TEXTS, PAIRS, night1, max_steps=0, time_budget_s=None, device="cpu")
    assert report["steps"] == 0 and not report["warm_start"]
    before = _pair_loss(night1)
    report = tune_encoder(TEXTS, PAIRS, night1, max_steps=8, batch_size=4, lr=2e-4, trainable_layers=2,
                          time_budget_s=None, device="cpu")
    assert report["steps"] == 8 and report["last_loss"] is not None
    after = _pair_loss(night1)
    assert after < before - 0.05
    emb = encode_items(night1, TEXTS[:3])
    assert emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    # the next night starts from these weights; a night never warm-starts from itself or a later night
    assert previous_weights(tmp_path, date(2024, 3, 2)) == night1 / "model"
    assert previous_weights(tmp_path, date(2024, 3, 1)) is None


def test_night_embeddings_tune_once_and_encode_only_new_texts(tmp_path):
    pairs = consecutive_pairs([np.asarray([0, 4, 1]), np.asarray([5, 1])])
    first, report = night_embeddings(tmp_path, date(2024, 3, 1), TEXTS[:6], pairs, tune=True, max_steps=1,
                                     batch_size=4, time_budget_s=None, device="cpu")
    assert first.shape == (6, 384) and report["texts_encoded"] == 6 and report["pairs"] == 3
    again, report = night_embeddings(tmp_path, date(2024, 3, 1), TEXTS, pairs, tune=False, device="cpu")
    assert report["texts_encoded"] == 2 and report["steps"] == 1  # the night's encoder is reused, not re-tuned
    np.testing.assert_allclose(again[:6], first, atol=1e-6)


def test_a_rerun_of_the_night_replays_the_steps_its_first_run_took(tmp_path):
    day, sequences = date(2024, 3, 1), [np.asarray([0, 4, 1]), np.asarray([5, 1]), np.asarray([2, 6, 3, 7])]
    recipe = {"max_steps": 5, "batch_size": 4, "time_budget_s": 600.0, "device": "cpu"}
    pairs = consecutive_pairs(sequences)
    _, first = night_embeddings(tmp_path, day, TEXTS, pairs, tune=True, **recipe)
    assert first["steps"] == 5 and not first["replayed_steps"]
    # as if the first run's machine had managed two steps in its time cap: the retry runs two, not five
    report_path = tmp_path / day.isoformat() / "text_encoder" / "tuning.json"
    report_path.write_text(json.dumps({**json.loads(report_path.read_text()), "steps": 2}))
    retried, report = night_embeddings(tmp_path, day, TEXTS, pairs, tune=True, **recipe)
    assert report["steps"] == 2 and report["replayed_steps"]
    # the same two seeded steps as a night capped at two: the retry reproduces that encoder exactly
    two, _ = night_embeddings(tmp_path / "other", day, TEXTS, pairs, tune=True, **{**recipe, "max_steps": 2})
    np.testing.assert_allclose(retried, two, atol=1e-6)
    # a night whose data or recipe changed is tuned afresh under its own caps: one more pair; as many pairs, one of
    # them another; the same pairs of one changed item text; another learning rate
    changes = [(sequences + [np.asarray([3, 0])], TEXTS, {}),
               ([np.asarray([0, 4, 2]), *sequences[1:]], TEXTS, {}),
               (sequences, [TEXTS[0] + " (new edition)", *TEXTS[1:]], {}),
               (sequences, TEXTS, {"lr": 1e-4})]
    for changed_sequences, texts, setting in changes:
        report_path.write_text(json.dumps({**json.loads(report_path.read_text()), "steps": 2}))
        changed_pairs = consecutive_pairs(changed_sequences)
        _, report = night_embeddings(tmp_path, day, texts, changed_pairs, tune=True, **recipe, **setting)
        assert report["steps"] == 5 and not report["replayed_steps"], setting or report["pairs"]
        _, report = night_embeddings(tmp_path, day, TEXTS, pairs, tune=True, **recipe)  # back to the first
        assert report["steps"] == 5 and not report["replayed_steps"]  # (its report now says 5 were taken)


def test_bf16_tuning_runs_the_gpu_path_on_the_cpu_and_is_no_replay_of_an_fp32_night(tmp_path):
    day, pairs = date(2024, 3, 1), consecutive_pairs([np.asarray([0, 4, 1]), np.asarray([5, 1, 6])])
    recipe = {"max_steps": 3, "batch_size": 4, "time_budget_s": None, "device": "cpu"}
    plain, first = night_embeddings(tmp_path, day, TEXTS, pairs, tune=True, precision="fp32", **recipe)
    mixed, report = night_embeddings(tmp_path, day, TEXTS, pairs, tune=True, precision="bf16", **recipe)
    assert report["bf16"] and not first["bf16"] and not report["replayed_steps"]  # another recipe: tuned afresh
    assert report["steps"] == 3 and np.isfinite(report["last_loss"])
    # encoded in bf16 too (normalised in bf16: unit length again in float32), close to the fp32 encoder, not equal
    assert mixed.dtype == np.float32 and np.allclose(np.linalg.norm(mixed, axis=1), 1.0, atol=1e-5)
    cosine = (mixed * plain).sum(axis=1)
    assert cosine.min() > 0.95 and not np.allclose(mixed, plain, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tunes_and_encodes_unit_vectors(tmp_path):
    pairs = consecutive_pairs([np.asarray([0, 4, 1]), np.asarray([5, 1, 6])])
    on_gpu, report = night_embeddings(tmp_path, date(2024, 3, 1), TEXTS, pairs, tune=True, max_steps=3,
                                      batch_size=4, time_budget_s=None, device="cuda")
    assert report["device"].startswith("cuda") and report["steps"] == 3
    assert report["bf16"] == torch.cuda.is_bf16_supported(including_emulation=False)
    assert on_gpu.dtype == np.float32 and np.allclose(np.linalg.norm(on_gpu, axis=1), 1.0, atol=1e-5)
    on_cpu = encode_items(tmp_path / "2024-03-01" / "text_encoder", TEXTS, device="cpu")
    assert (on_gpu * on_cpu).sum(axis=1).min() > 0.95  # the same encoder in bf16 and fp32


def _text_where(aligned_steps) -> np.ndarray:
    """40 orthogonal item texts (every other item ties at NDCG 0), except that shopper j's next item 2j + 1 reads
    like the item before it, 2j (NDCG 1), for each j in aligned_steps."""
    vectors = np.eye(40, dtype=np.float32)
    for j in aligned_steps:
        vectors[2 * j + 1] = vectors[2 * j]
    return vectors


def test_gate_adopts_tuned_text_only_when_it_ranks_the_next_items_higher_beyond_noise():
    # each shopper's last step goes from item 2j to item 2j + 1; a repeat or a one-event history is no exam
    sequences = [np.asarray([39, 2 * j, 2 * j + 1]) for j in range(18)] + [np.asarray([3, 5, 5]), np.asarray([7])]
    steps = last_steps(sequences)
    assert steps.tolist() == [[2 * j, 2 * j + 1] for j in range(18)]
    base = _text_where(range(5))
    np.testing.assert_allclose(next_item_ndcg(base, steps), [1.0] * 5 + [0.0] * 13)
    gate = text_gate(base, _text_where(range(18)), sequences)  # 13 shoppers gain, none lose
    assert gate["adopted"] and gate["exam_users"] == 18 and gate["gain"] == round(13 / 18, 4) > gate["gain_se"]
    assert not text_gate(_text_where(range(18)), base, sequences)["adopted"]  # worse text is not adopted
    assert not text_gate(base, base.copy(), sequences)["adopted"]  # nor text that is no better
    noisy = text_gate(base, _text_where(range(2, 8)), sequences)  # 3 gain, 2 lose: a gain inside the exam's noise
    assert 0 < noisy["gain"] < noisy["gain_se"] and not noisy["adopted"]
    # a shop that sets text_gate_margin_se 0 takes any gain; a stricter margin refuses even the clear one
    assert text_gate(base, _text_where(range(2, 8)), sequences, margin=0.0)["adopted"]
    assert not text_gate(base, base.copy(), sequences, margin=0.0)["adopted"]  # no gain is still no gain
    strict = text_gate(base, _text_where(range(18)), sequences, margin=gate["gain"] / gate["gain_se"] + 0.1)
    assert not strict["adopted"] and strict["margin_se"] > 1
    nothing = text_gate(base, base, [np.asarray([1])])  # nothing to judge by: the base stays
    assert not nothing["adopted"] and nothing["exam_users"] == 0 and nothing["base_ndcg"] is None


def test_two_processes_tune_the_nights_encoder_data_parallel_and_a_re_run_replays_it(tmp_path):
    tune_encoder(TEXTS, PAIRS, tmp_path / "base", max_steps=0, time_budget_s=None, device="cpu")
    night = dict(tune=True, device="cpu", max_steps=8, batch_size=4, lr=2e-4, trainable_layers=2, time_budget_s=None)
    models = tmp_path / "models"
    tuned, report = night_embeddings(models, date(2024, 3, 1), TEXTS, PAIRS, processes=2, **night)  # torchrun, gloo
    assert report["processes"] == 2 and report["steps"] == 8 and not report["replayed_steps"]
    out = models / "2024-03-01" / "text_encoder"
    assert json.loads((out / "tuning.json").read_text())["processes"] == 2  # written by the first process
    assert _pair_loss(out) < _pair_loss(tmp_path / "base") - 0.05
    again, report = night_embeddings(models, date(2024, 3, 1), TEXTS, PAIRS, processes=2, **night)  # a re-run
    assert report["replayed_steps"] and report["steps"] == 8
    np.testing.assert_allclose(again, tuned, atol=1e-5)
    alone = tune_encoder(TEXTS, PAIRS, tmp_path / "alone", earlier=report, device="cpu", max_steps=8, batch_size=4,
                         lr=2e-4, trainable_layers=2, time_budget_s=None)
    assert not alone["replayed_steps"] and "processes" not in alone  # one process is another recipe: no replay


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_tune_the_encoder_with_nccl(tmp_path):
    from recsys_tasks.models.distributed import tune_in_processes

    report = tune_in_processes(dict(texts=TEXTS, pairs=PAIRS, out_dir=tmp_path, max_steps=4, time_budget_s=None,
                                    device="cuda"), 2)
    assert report["processes"] == 2 and report["device"].startswith("cuda") and report["steps"] == 4
    assert np.allclose(np.linalg.norm(encode_items(tmp_path, TEXTS, device="cuda"), axis=1), 1.0, atol=1e-5)

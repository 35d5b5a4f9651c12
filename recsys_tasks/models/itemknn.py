"""Item-based collaborative filtering with cosine similarity."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_tasks.models.base import Evidence, Recommender, TrainingData, strongest_history_item


def _keep_top_per_row(block: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the n largest entries of each row; equal values keep the lower column index."""
    block.sort_indices()
    keep = np.ones(block.nnz, dtype=bool)
    for row in range(block.shape[0]):
        start, end = block.indptr[row], block.indptr[row + 1]
        if end - start > n:
            values = block.data[start:end]
            order = np.lexsort((block.indices[start:end], -values))
            keep[start + order[n:]] = False
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    return sp.csr_matrix((block.data[keep], (rows[keep], block.indices[keep])), shape=block.shape)


class ItemKNN(Recommender):
    """Item-based kNN (Sarwar et al., WWW 2001; Deshpande & Karypis, TOIS 2004).

    X (n_users, n_items) is the interaction matrix, 0/1 when binary. W (n_items, n_items) holds the cosine
    similarity of item columns, W[h, i] = X[:, h].X[:, i] / (|X[:, h]| |X[:, i]|), zero diagonal, keeping the
    `neighbours` largest per row h (all when None). Scores (n_users, n_items) = X[u] @ W; items that never
    co-occur with the user's history score 0.
    """

    name = "itemknn"
    scale_limits = "itemknn: O(n_items x neighbours) memory; X^T X built block by block of items"

    def __init__(self, neighbours: int | None = 100, binary: bool = True, block_items: int = 2048) -> None:
        super().__init__()
        self.neighbours = neighbours  # int | None: similar items kept per item (None keeps all)
        self.binary = binary  # bool: cosine on 0/1 interactions instead of the weights
        self.block_items = block_items  # int: items per block of X^T X while fitting
        self.user_items: sp.csr_matrix | None = None  # (n_users, n_items) float32 X
        self.similarity: sp.csr_matrix | None = None  # (n_items, n_items) float32 W

    def get_params(self) -> dict:
        return {"neighbours": self.neighbours, "binary": self.binary, "block_items": self.block_items}

    def fit(self, data: TrainingData) -> "ItemKNN":
        self._remember_ids(data)
        x = data.interactions.astype(np.float64)
        x.eliminate_zeros()
        if self.binary:
            x.data[:] = 1.0
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        xt = x.T.tocsr()
        blocks = []
        for start in range(0, data.n_items, self.block_items):
            stop = min(start + self.block_items, data.n_items)
            gram = (xt[start:stop] @ x).tocoo()
            values = gram.data / (norms[start + gram.row] * norms[gram.col])
            off_diagonal = start + gram.row != gram.col
            block = sp.csr_matrix(
                (values[off_diagonal], (gram.row[off_diagonal], gram.col[off_diagonal])),
                shape=(stop - start, data.n_items),
            )
            if self.neighbours is not None:
                block = _keep_top_per_row(block, self.neighbours)
            blocks.append(block)
        self.similarity = sp.vstack(blocks, format="csr").astype(np.float32)
        self.user_items = x.astype(np.float32).tocsr()
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        rows = self.user_items[np.atleast_1d(user_idx)]
        return np.asarray((rows @ self.similarity).toarray(), dtype=np.float32)

    def explain(self, user_idx: int, item_idx: np.ndarray) -> list[Evidence]:
        self._check_fitted()
        because = strongest_history_item(self.user_items[user_idx], self.similarity, item_idx)
        return [Evidence("itemknn", because_item=h) for h in because]

    def _state(self) -> dict:
        return {"user_items": self.user_items, "similarity": self.similarity}

    def _set_state(self, state: dict) -> None:
        self.user_items = state["user_items"]
        self.similarity = state["similarity"]

"""EASE: a closed-form linear item-item autoencoder."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_tasks.models.base import Evidence, Recommender, TrainingData, strongest_history_item


def ease_weights(gram: np.ndarray, lam: float, device: str | None = None) -> np.ndarray:
    """Return B = I - P / diag(P) with zero diagonal, P = (gram + lam I)^-1, solved in float64.

    gram: (n, n) X^T X. device None solves with NumPy; a torch device name ("cuda", "cpu") solves with torch.
    """
    if device is None:
        g = np.array(gram, dtype=np.float64)
        g[np.diag_indices_from(g)] += lam
        p = np.linalg.inv(g)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return b.astype(np.float32)
    import torch  # heavy: imported only when a device is asked for

    g = torch.as_tensor(np.asarray(gram), dtype=torch.float64, device=device)
    g.diagonal().add_(lam)
    p = torch.linalg.inv(g)
    b = -p / torch.diagonal(p)[None, :]
    b.fill_diagonal_(0.0)
    return b.to(torch.float32).cpu().numpy()


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoders (Steck, WWW 2019).

    X (n_users, m) holds the interactions with the m = min(max_items, n_items) most popular items (most users
    first, then lower index), 0/1 when binary. B (m, m) = I - P / diag(P), P = (X^T X + lam I)^-1, diag(B) = 0.
    Scores (n_users, n_items) = X[u] @ B on those m items and -inf on the others.
    """

    name = "ease"
    scale_limits = "ease: O(max_items^2) memory and O(max_items^3) time; fit on the max_items most popular items"

    def __init__(
        self, lam: float = 500.0, max_items: int | None = 20_000, binary: bool = True, device: str | None = None
    ) -> None:
        super().__init__()
        self.lam = lam  # float: L2 regularisation lambda
        self.max_items = max_items  # int | None: items kept, the most popular first (None keeps all)
        self.binary = binary  # bool: fit on 0/1 interactions instead of the weights
        self.device = device  # str | None: torch device for the inverse; None uses NumPy
        self.kept_items: np.ndarray | None = None  # (m,) int64 item indices, ascending
        self.user_items: sp.csr_matrix | None = None  # (n_users, m) float32 X restricted to kept_items
        self.weights: np.ndarray | None = None  # (m, m) float32 B

    def get_params(self) -> dict:
        return {"lam": self.lam, "max_items": self.max_items, "binary": self.binary, "device": self.device}

    def fit(self, data: TrainingData) -> "EASE":
        self._remember_ids(data)
        x = data.interactions.astype(np.float64)
        x.eliminate_zeros()
        if self.binary:
            x.data[:] = 1.0
        n_items = data.n_items
        if self.max_items is None or self.max_items >= n_items:
            kept = np.arange(n_items)
        else:
            users_per_item = np.diff(x.tocsc().indptr)
            kept = np.sort(np.lexsort((np.arange(n_items), -users_per_item))[: self.max_items])
        x = x[:, kept].tocsr()
        gram = (x.T @ x).toarray()
        self.weights = ease_weights(gram, self.lam, self.device)
        self.kept_items = kept.astype(np.int64)
        self.user_items = x.astype(np.float32)
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        rows = self.user_items[np.atleast_1d(user_idx)]
        scores = np.full((rows.shape[0], len(self.items)), -np.inf, dtype=np.float32)
        scores[:, self.kept_items] = rows @ self.weights
        return scores

    def explain(self, user_idx: int, item_idx: np.ndarray) -> list[Evidence]:
        self._check_fitted()
        item_idx = np.atleast_1d(item_idx)
        column = np.full(len(self.items), -1, dtype=np.int64)
        column[self.kept_items] = np.arange(len(self.kept_items))
        out = []
        history = self.user_items[user_idx]
        cols = column[item_idx]
        known = cols >= 0
        because = [None] * len(item_idx)
        if known.any():
            found = strongest_history_item(history, self.weights, cols[known])
            for slot, h in zip(np.flatnonzero(known), found):
                because[slot] = None if h is None else int(self.kept_items[h])
        for h in because:
            out.append(Evidence("ease", because_item=h))
        return out

    def _state(self) -> dict:
        return {"kept_items": self.kept_items, "user_items": self.user_items, "weights": self.weights}

    def _set_state(self, state: dict) -> None:
        self.kept_items = state["kept_items"].astype(np.int64)
        self.user_items = state["user_items"]
        self.weights = state["weights"].astype(np.float32)

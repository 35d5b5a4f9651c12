"""The teacher: a transformer over each user's recent history, scoring the whole catalogue (SASRec-style).

Kang & McAuley, "Self-Attentive Sequential Recommendation" (ICDM 2018), trained with a softmax over the whole
catalogue instead of one sampled negative (sampled softmax past full_softmax_max_items), items represented by the
fused tower of sequence_net (tuned text + ID + attributes), and a repeat head for shops whose customers re-order.
Optionally the score adds a closed-form item-item prior (EASE, Steck 2019) fitted on the same histories: the
transformer is low-rank (dim), the prior is full-rank co-occurrence; and a "buy it again" term, log(1 + times
bought) over the whole history (the repeat head sees only the window). Both weights are chosen on validation.
Shapes: windows (B, max_len) -> states (B, max_len, dim) -> logits (B, max_len, n_items).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
import torch

from recsys_tasks.models.base import TrainingData
from recsys_tasks.models.ease import EASE
from recsys_tasks.models.device import (TimeBudget, add_sparse, batch_size_for, seed_everything,
                                        uses_bf16)
from recsys_tasks.models.sequence_net import TransformerEncoder
from recsys_tasks.models.sequence_recommender import SequenceRecommender
from recsys_tasks.models.sequence_training import train_net
from recsys_tasks.models.sequences import histories, sequence_ages, training_windows

log = logging.getLogger(__name__)


class Teacher(SequenceRecommender):
    """Transformer over the newest max_len events; every known user is scored against every item."""

    name = "teacher"
    scale_limits = ("teacher: O(n_items x dim) parameters; full softmax up to full_softmax_max_items, sampled past "
                    "it; scoring O(max_len^2 x dim + n_items x dim) per user")

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 2, max_len: int = 50, dropout: float = 0.3,
                 id_dropout: float = 0.1, target_window: int = 1, repeat_aware: str | bool = "auto",
                 epochs: int = 20, batch_size: int = 128, cuda_batch_size: int = 1024, lr: float = 1e-3,
                 weight_decay: float = 0.01, full_softmax_max_items: int = 50_000, negatives: int = 4096,
                 horizon_days: float | None = None, min_item_count: int = 1, mask_history: bool = False,
                 prior_weight: float = 0.0, prior_lambda: float = 50.0, prior_max_items: int = 20_000,
                 buy_again_weight: float = 0.0, time_budget_s: float | None = None,
                 device: str | None = None, seed: int = 0, precision: str = "auto") -> None:
        super().__init__()
        self._init_sequence(dim, max_len, id_dropout, repeat_aware, device, seed, precision)
        self.mask_history = mask_history  # bool: without repeats, a user's own items leave the training softmax
        self.layers = layers  # int: transformer blocks
        self.heads = heads  # int: attention heads (dim must divide by it)
        self.dropout = dropout  # float: dropout on embeddings, attention and feed-forward outputs
        self.target_window = target_window  # int: each position predicts the distinct items of the next N events
        self.horizon_days = horizon_days  # float | None: with time stamps, targets = items of the next N days instead
        self.epochs = epochs  # int: passes over every window (fewer when the time budget runs out)
        self.batch_size = batch_size  # int: windows per step on the CPU
        self.cuda_batch_size = cuda_batch_size  # int: windows per step on a GPU
        self.lr = lr  # float: AdamW learning rate
        self.weight_decay = weight_decay  # float: AdamW weight decay
        self.full_softmax_max_items = full_softmax_max_items  # int: larger catalogues use a sampled softmax
        self.negatives = negatives  # int: uniform negatives per step of the sampled softmax
        self.min_item_count = min_item_count  # int: items seen fewer times get no ID embedding (text only)
        self.prior_weight = prior_weight  # float: weight of the item-item prior in the score (0: transformer only)
        self.prior_lambda = prior_lambda  # float: L2 regularisation of the closed-form item-item prior (EASE)
        self.prior_max_items = prior_max_items  # int: the prior covers at most this many most popular items
        self.buy_again_weight = buy_again_weight  # float: weight of log(1 + times bought) over the whole history
        self.bought: sp.csr_matrix | None = None  # (n_users, n_items) float32 log(1 + purchases)
        self.time_budget_s = time_budget_s  # float | None: wall-clock limit of fit (None: epochs decide)
        self.prior: EASE | None = None

    def get_params(self) -> dict:
        return {"dim": self.dim, "layers": self.layers, "heads": self.heads, "max_len": self.max_len,
                "dropout": self.dropout, "id_dropout": self.id_dropout, "target_window": self.target_window,
                "horizon_days": self.horizon_days,
                "repeat_aware": self.repeat_aware, "epochs": self.epochs, "batch_size": self.batch_size,
                "cuda_batch_size": self.cuda_batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "full_softmax_max_items": self.full_softmax_max_items, "negatives": self.negatives,
                "min_item_count": self.min_item_count, "mask_history": self.mask_history,
                "prior_weight": self.prior_weight, "prior_lambda": self.prior_lambda,
                "prior_max_items": self.prior_max_items, "buy_again_weight": self.buy_again_weight,
                "time_budget_s": self.time_budget_s,
                "device": self.device, "seed": self.seed, "precision": self.precision}

    def _encoder(self) -> TransformerEncoder:
        return TransformerEncoder(self.dim, self.max_len, self.layers, self.heads, self.dropout)

    def fit(self, data: TrainingData) -> "Teacher":
        started = time.perf_counter()
        self._remember_ids(data)
        generator = seed_everything(self.seed)
        device = self._torch_device()
        sequences, ages = histories(data), sequence_ages(data)
        self.net = self._build(data, sequences, ages, self.min_item_count)
        windows = training_windows(sequences, self.max_len, self.target_window, ages, self.horizon_days)
        losses = train_net(
            self.net, windows, data.n_items, epochs=self.epochs,
            batch_size=batch_size_for(device, self.batch_size, self.cuda_batch_size), lr=self.lr,
            weight_decay=self.weight_decay, budget=TimeBudget(self.time_budget_s), device=device,
            generator=generator, full_softmax_max_items=self.full_softmax_max_items, negatives=self.negatives,
            mask_history=self.mask_history and not self.uses_repeats, label="teacher epochs",
            precision=self.precision)
        self.prior = None
        if self.prior_weight > 0:
            self.prior = EASE(self.prior_lambda, self.prior_max_items, binary=True).fit(data)
        self.bought = data.purchases.copy()
        self.bought.data = np.log1p(self.bought.data).astype(np.float32)
        self.bought.eliminate_zeros()
        self.fit_report = {"device": str(device), "windows": len(windows), "epochs_run": len(losses),
                           "bf16": uses_bf16(device, self.precision),
                           "loss_by_epoch": [round(x, 4) for x in losses], "repeat_aware": self.uses_repeats,
                           "fit_seconds": round(time.perf_counter() - started, 2)}
        log.info("teacher fit: %s", self.fit_report)
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Return the transformer's logits; with priors, the blend of combine()."""
        self._check_fitted()
        return self.combine(self.components(np.atleast_1d(np.asarray(user_idx, dtype=np.int64))))

    def _scores_on(self, user_idx: np.ndarray, device: torch.device) -> torch.Tensor:
        """combine(components(user_idx)) computed by torch on device: the logits, the item-item prior (a sparse
        product with EASE's weights, copied to the device once) and the buy-again term are added where the logits
        lie. On the CPU as fast as score()'s NumPy, with the same lists (bench/README "The exact top-K")."""
        logits = self._logits_on(user_idx, device)
        use_prior, use_again = self._terms()
        if not (use_prior or use_again):
            return logits
        out = standardised_tensor(logits)
        if use_prior:
            out += self.prior_weight * standardised_tensor(self._prior_on(user_idx, device))
        if use_again:
            add_sparse(out, self.bought[user_idx], self.buy_again_weight)
        return out

    def _prior_on(self, user_idx: np.ndarray, device: torch.device) -> torch.Tensor:
        """Return prior.score(user_idx) computed on device (EASE's weights copied there once per fit and device)."""
        prior = self.prior
        weights = self._on_device.get("prior weights", prior.weights, device)
        kept = self._on_device.get("prior kept items", prior.kept_items, device)
        rows = prior.user_items[user_idx].tocoo()  # a few items per user: a sparse product, as EASE's own score
        history = torch.sparse_coo_tensor(torch.as_tensor(np.vstack([rows.row, rows.col]), device=device),
                                          torch.as_tensor(rows.data, dtype=torch.float32, device=device),
                                          size=rows.shape, check_invariants=False)  # valid: from scipy
        out = torch.full((len(user_idx), self.n_items), float("-inf"), dtype=torch.float32, device=device)
        out[:, kept] = torch.sparse.mm(history, weights)
        return out

    def components(self, user_idx: np.ndarray) -> dict[str, np.ndarray]:
        """Return the parts of the score for users: transformer logits, item-item prior, log(1 + times bought)."""
        parts = {"logits": self._last_logits(user_idx)}
        use_prior, use_again = self._terms()
        if use_prior:
            parts["prior"] = self.prior.score(user_idx)
        if use_again:
            parts["buy_again"] = self.bought[user_idx].toarray()
        return parts

    def _terms(self) -> tuple[bool, bool]:
        """Return whether the score adds the item-item prior and the buy-again term (fitted, with a weight > 0)."""
        return (self.prior is not None and self.prior_weight > 0,
                self.bought is not None and self.buy_again_weight > 0)

    def combine(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """Return the score: standardised logits + prior_weight x standardised prior + buy_again_weight x buy_again.

        Without either prior the raw logits (what the softmax learned) are the score.
        """
        use_prior = "prior" in parts and self.prior_weight > 0
        use_again = "buy_again" in parts and self.buy_again_weight > 0
        if not (use_prior or use_again):
            return parts["logits"]
        out = standardised(parts["logits"])
        if use_prior:
            out += np.float32(self.prior_weight) * standardised(parts["prior"])
        if use_again:
            out += np.float32(self.buy_again_weight) * parts["buy_again"].astype(np.float32)
        return out

    def _state(self) -> dict:
        state = {**self._sequence_state(), "bought": self.bought}
        if self.prior is not None:
            state.update({f"prior.{k}": v for k, v in self.prior._state().items()})
        return state

    def _set_state(self, state: dict) -> None:
        prior = {k[len("prior."):]: state.pop(k) for k in list(state) if k.startswith("prior.")}
        self.bought = sp.csr_matrix(state.pop("bought"), dtype=np.float32)
        self._set_sequence_state(state)
        self.prior = None
        if prior:
            self.prior = EASE(self.prior_lambda, self.prior_max_items, binary=True)
            self.prior.users, self.prior.items = self.users, self.items
            self.prior._set_state(prior)


def standardised(scores: np.ndarray) -> np.ndarray:
    """Return each row minus its mean over its std (float32); -inf (unscored) entries first take the row's minimum."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    finite = np.isfinite(scores)
    if not finite.all():
        low = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
        scores = np.where(finite, scores, np.where(np.isfinite(low), low, 0.0)).astype(np.float32)
    scores -= scores.mean(axis=1, keepdims=True)
    scores /= np.maximum(scores.std(axis=1, keepdims=True), 1e-6)
    return scores


def standardised_tensor(scores: torch.Tensor) -> torch.Tensor:
    """standardised() for a float32 tensor, computed where it lies; returns a new tensor."""
    finite = torch.isfinite(scores)
    if not bool(finite.all()):
        low = torch.where(finite, scores, float("inf")).amin(dim=1, keepdim=True)
        scores = torch.where(finite, scores, torch.where(torch.isfinite(low), low, 0.0))
    scores = scores - scores.mean(dim=1, keepdim=True)
    return scores / scores.std(dim=1, correction=0, keepdim=True).clamp_min(1e-6)

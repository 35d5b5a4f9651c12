"""The student: a small pooled-history model distilled from the teacher, scored with one matrix product.

Knowledge distillation for ranking (Tang & Wang, "Ranking Distillation", KDD 2018; Hinton et al. 2015): the student
learns the ground truth (next events, like the teacher) and, for every training user, the teacher's top-N list
with its scores as a soft target: loss = w_gt CE(next events) + w_kd sum_j p_teacher(j) (-log p_student(j)),
p_teacher = softmax(teacher score / T) over the top-N. After fit, every known user is one vector u (dim,) and every
item one vector v (dim,): score(u, i) = u . v_i (+ a sparse "buy it again" bonus on the user's own items), so
scoring users is one chunked (users x dim) @ (dim x items) product and an exact top-K, both on the model's device
(the GPU where there is one: only each user's K best come back to the host).
When the teacher adds its item-item prior (EASE), the student can carry it too (prior_rank): rank-r factors of the
prior appended to both sides, its weight a parameter of the distillation, so the network learns what the prior
leaves; the product is then (users x (dim + r)) @ ((dim + r) x items).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
import torch

from recsys_tasks.models.base import TrainingData
from recsys_tasks.models.device import (TimeBudget, add_sparse, autocast, batch_size_for,
                                        seed_everything, uses_bf16)
from recsys_tasks.models.distillation import distillation_loss, history_matrix, low_rank_prior
from recsys_tasks.models.sequence_net import PooledEncoder
from recsys_tasks.models.sequence_recommender import SequenceRecommender
from recsys_tasks.models.sequence_training import all_items, train_net
from recsys_tasks.models.sequences import histories, sequence_ages, training_windows
from recsys_tasks.models.teacher import Teacher
from recsys_tasks.models.topk import top_k

log = logging.getLogger(__name__)


class Student(SequenceRecommender):
    """Recency-weighted pooled history (no attention), distilled from a Teacher; scores are u . v."""

    name = "student"
    scale_limits = ("student: O((n_users + n_items) x (dim + prior_rank)) floats; scoring one (users x (dim + "
                    "prior_rank)) @ (.. x n_items) product per chunk plus O(nnz) repeat bonus")

    def __init__(self, dim: int = 32, max_len: int = 50, id_dropout: float = 0.1, target_window: int = 1,
                 horizon_days: float | None = None, repeat_aware: str | bool = "auto", epochs: int = 10, batch_size: int = 256,
                 cuda_batch_size: int = 2048, lr: float = 3e-3, weight_decay: float = 0.01,
                 distill_top_n: int = 50, distill_weight: float = 4.0, ground_truth_weight: float = 1.0,
                 temperature: float = 1.0, full_softmax_max_items: int = 50_000, negatives: int = 4096,
                 min_item_count: int = 1, time_budget_s: float | None = None, device: str | None = None,
                 seed: int = 0, user_residual: bool = True, distill_new: bool = True, prior_rank: int = 0,
                 prior_boost: float = 1.0, teacher_params: dict | None = None, precision: str = "auto") -> None:
        super().__init__()
        self._init_sequence(dim, max_len, id_dropout, repeat_aware, device, seed, precision)
        self.target_window = target_window  # int: each position predicts the distinct items of the next N events
        self.horizon_days = horizon_days  # float | None: with time stamps, targets = items of the next N days instead
        self.epochs = epochs  # int: passes over every window (fewer when the time budget runs out)
        self.batch_size = batch_size  # int: windows (and distilled users) per step on the CPU
        self.cuda_batch_size = cuda_batch_size  # int: the same on a GPU
        self.lr = lr  # float: AdamW learning rate
        self.weight_decay = weight_decay  # float: AdamW weight decay
        self.distill_top_n = distill_top_n  # int: length of the teacher's list per user
        self.distill_weight = distill_weight  # float: weight of the teacher's lists in the loss
        self.ground_truth_weight = ground_truth_weight  # float: weight of the observed next events in the loss
        self.temperature = temperature  # float: softens the teacher's scores into a distribution
        self.full_softmax_max_items = full_softmax_max_items  # int: larger catalogues use a sampled softmax
        self.negatives = negatives  # int: uniform negatives per step of the sampled softmax
        self.min_item_count = min_item_count  # int: items seen fewer times get no ID embedding (text only)
        self.time_budget_s = time_budget_s  # float | None: wall-clock limit of the student's own training
        self.user_residual = user_residual  # bool: known users get a free vector added to their pooled history
        self.distill_new = distill_new  # bool: re-buying shops: also the teacher's list without the user's history
        _check_prior(prior_rank, prior_boost)
        self.prior_rank = int(prior_rank)  # int: carry the teacher's item-item prior at this rank (0: not carried)
        self.prior_boost = prior_boost  # float: the carried prior is served at this multiple of its learned weight
        self.prior_weight: float | None = None  # the carried prior's weight learned in distillation (None: none)
        self.teacher_params = dict(teacher_params or {})  # dict: a Teacher fitted here when none is given
        self.user_vectors: np.ndarray | None = None  # (n_users, dim [+ rank]) float32, the prior's weight folded in
        self.item_vectors: np.ndarray | None = None  # (n_items, dim [+ rank]) float32, the logit scale folded in
        self.repeat_bonus: sp.csr_matrix | None = None  # (n_users, n_items) float32 on the users' own items
        self._teacher: Teacher | None = None

    def get_params(self) -> dict:
        return {"dim": self.dim, "max_len": self.max_len, "id_dropout": self.id_dropout,
                "target_window": self.target_window, "horizon_days": self.horizon_days,
                "repeat_aware": self.repeat_aware, "epochs": self.epochs,
                "batch_size": self.batch_size, "cuda_batch_size": self.cuda_batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay, "distill_top_n": self.distill_top_n,
                "distill_weight": self.distill_weight, "ground_truth_weight": self.ground_truth_weight,
                "temperature": self.temperature, "full_softmax_max_items": self.full_softmax_max_items,
                "negatives": self.negatives, "min_item_count": self.min_item_count,
                "time_budget_s": self.time_budget_s, "device": self.device, "seed": self.seed,
                "user_residual": self.user_residual, "distill_new": self.distill_new,
                "prior_rank": self.prior_rank, "prior_boost": self.prior_boost, "teacher_params": self.teacher_params,
                "precision": self.precision}

    def with_teacher(self, teacher: Teacher) -> "Student":
        """Distil from an already fitted teacher (fitted on the same data) instead of fitting one."""
        self._teacher = teacher
        return self

    def _encoder(self) -> PooledEncoder:
        return PooledEncoder(self.dim, self.max_len)

    def _teacher_lists(self, teacher: Teacher, exclude: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
        """Return the teacher's top-N items (n_users, N) and scores for every user, history removed if asked."""
        users = np.arange(len(self.users))
        return top_k(teacher, users, self.distill_top_n, exclude=exclude, chunk=1024)

    def fit(self, data: TrainingData) -> "Student":
        started = time.perf_counter()
        self._remember_ids(data)
        teacher = self._teacher
        if teacher is None:
            teacher = Teacher(**{"time_budget_s": self.time_budget_s, **self.teacher_params}).fit(data)
        if list(teacher.items) != list(data.items) or list(teacher.users) != list(data.users):
            raise ValueError("the teacher was fitted on other users or items")
        teacher_seconds = time.perf_counter() - started
        generator = seed_everything(self.seed)
        device = self._torch_device()
        sequences, ages = histories(data), sequence_ages(data)
        self.net = self._build(data, sequences, ages, self.min_item_count)
        if self.user_residual:
            # fitted only by the teacher's lists: the student copies the teacher per user, not just on average
            self.net.user_residual = torch.nn.Embedding(data.n_users, self.dim)
            torch.nn.init.zeros_(self.net.user_residual.weight)
        seen = None if self.uses_repeats else history_matrix(sequences, data.n_items)
        top_items, top_scores = self._teacher_lists(teacher, seen)
        new_lists = None
        if self.uses_repeats and self.distill_new:
            # a re-buying user's top-N is mostly their own items: the teacher's order of the items they never
            # had is taught by a second list, the student's history hidden as on the "new" track
            new_lists = self._teacher_lists(teacher, history_matrix(sequences, data.n_items))
        again = None
        if getattr(teacher, "buy_again_weight", 0) > 0 and teacher.bought is not None:
            # the teacher's "buy it again" term covers the whole history: the student learns its own weight for it
            again = teacher.bought
            self.net.again_weight = torch.nn.Parameter(torch.ones(()))
        prior = None
        if self.prior_rank > 0 and teacher.prior is not None and teacher.prior_weight > 0:
            # the teacher's item-item prior, folded into the student's vectors as rank-r user and item factors
            prior = low_rank_prior(teacher.prior, self.n_items, self.prior_rank)
            self.net.prior_weight = torch.nn.Parameter(torch.ones(()))
        kd = distillation_loss(self, top_items, top_scores, device, generator, again, new_lists, prior)
        windows = training_windows(sequences, self.max_len, self.target_window, ages, self.horizon_days)
        batch = batch_size_for(device, self.batch_size, self.cuda_batch_size)
        budget = TimeBudget(self.time_budget_s)
        losses = train_net(
            self.net, windows, data.n_items, epochs=self.epochs, batch_size=batch, lr=self.lr,
            weight_decay=self.weight_decay, budget=budget, device=device, generator=generator,
            full_softmax_max_items=self.full_softmax_max_items, negatives=self.negatives,
            mask_history=not self.uses_repeats, extra_loss=kd if self.distill_weight > 0 else None,
            window_weight=self.ground_truth_weight, label="student epochs", precision=self.precision)
        self._export(device, again, prior)
        self.fit_report = {"device": str(device), "windows": len(windows), "epochs_run": len(losses),
                           "bf16": uses_bf16(device, self.precision),
                           "loss_by_epoch": [round(x, 4) for x in losses], "repeat_aware": self.uses_repeats,
                           "teacher_seconds": round(teacher_seconds, 2),
                           "prior_rank": 0 if prior is None else prior[0].shape[1],
                           "prior_weight": None if prior is None else round(self.prior_weight, 4),
                           "fit_seconds": round(time.perf_counter() - started, 2)}
        log.info("student fit: %s", self.fit_report)
        return self

    @torch.no_grad()
    def _export(self, device: torch.device, again: sp.csr_matrix | None = None,
                prior: tuple[np.ndarray, np.ndarray] | None = None, chunk: int = 2048) -> None:
        """Turn the network into user vectors, item vectors and the sparse repeat bonus (+ the buy-again term);
        a carried prior's factors are appended to both, its learned weight x prior_boost folded into the users'."""
        net = self.net.to(device).eval()
        _, position = all_items(self.n_items, device)
        with autocast(device, self.precision):
            vectors = net.tower(None)
            scale = net.log_scale.exp() / np.sqrt(self.dim)
            users, bonus_rows, bonus_cols, bonus_vals = [], [], [], []
            for start in range(0, len(self.users), chunk):
                tokens, counts, ages = self._tail(np.arange(start, min(start + chunk, len(self.users))), device)
                rows = torch.arange(tokens.shape[0], device=device)
                cols = torch.full_like(rows, tokens.shape[1] - 1)
                states = net.states(tokens, vectors, position)[rows, cols]
                if hasattr(net, "user_residual"):
                    states = states + net.user_residual(rows + start)
                users.append(states.float().cpu().numpy())
                if net.repeat is not None:
                    # the bonus the network adds at the cut-off, frozen into a sparse matrix
                    bonus, where = net.repeat_bonus(tokens, counts, ages, vectors, position, states, rows, cols,
                                                    torch.zeros_like(rows, dtype=ages.dtype))
                    bonus, where = bonus.float().cpu().numpy(), where.cpu().numpy()
                    keep = (tokens.cpu().numpy() > 0) & (bonus != 0)
                    r, c = np.nonzero(keep)
                    bonus_rows.append(r + start)
                    bonus_cols.append(where[r, c])
                    bonus_vals.append(bonus[r, c])
        self.user_vectors = np.vstack(users).astype(np.float32)
        self.item_vectors = (vectors.float() * scale).cpu().numpy().astype(np.float32)
        shape = (len(self.users), self.n_items)
        if bonus_rows:
            self.repeat_bonus = sp.csr_matrix((np.concatenate(bonus_vals), (np.concatenate(bonus_rows),
                                                                            np.concatenate(bonus_cols))), shape=shape,
                                              dtype=np.float32)
        else:
            self.repeat_bonus = sp.csr_matrix(shape, dtype=np.float32)
        if again is not None:
            weight = float(self.net.again_weight.detach().cpu())
            self.repeat_bonus = (self.repeat_bonus + weight * again).astype(np.float32).tocsr()
        self.prior_weight = None
        if prior is not None:
            self.prior_weight = float(self.net.prior_weight.detach().cpu())
            weight = np.float32(self.prior_weight * self.prior_boost)
            self.user_vectors = np.hstack([self.user_vectors, weight * prior[0]]).astype(np.float32)
            self.item_vectors = np.hstack([self.item_vectors, prior[1]]).astype(np.float32)
        self.net = None  # scoring needs only the vectors

    def set_prior_boost(self, boost: float) -> "Student":
        """Serve the carried prior at `boost` x its learned weight (a fitted student; no retraining)."""
        self._check_fitted()
        _check_prior(self.prior_rank, boost)
        if self.prior_weight is not None and boost != self.prior_boost:
            self.user_vectors[:, self.dim:] *= np.float32(boost / self.prior_boost)
        self.prior_boost = boost
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        user_idx = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        scores = self.user_vectors[user_idx] @ self.item_vectors.T
        bonus = self.repeat_bonus[user_idx].tocoo()
        scores[bonus.row, bonus.col] += bonus.data
        return scores

    def _scores_on(self, user_idx: np.ndarray, device: torch.device) -> torch.Tensor:
        """Return the scores computed by torch on device: the product, then the sparse bonus added in place."""
        items = self._on_device.get("item vectors", self.item_vectors, device)  # once per fit or load and device
        users = torch.as_tensor(self.user_vectors[user_idx], device=device)
        return add_sparse(users @ items.T, self.repeat_bonus[user_idx])

    def _item_vectors(self, items: np.ndarray) -> np.ndarray:
        return self.item_vectors[items].copy()

    def _state(self) -> dict:
        state = {"user_vectors": self.user_vectors, "item_vectors": self.item_vectors,
                 "repeat_bonus": self.repeat_bonus, **self._tail_state()}
        if self.prior_weight is not None:
            state["prior_weight"] = np.float32(self.prior_weight)
        return state

    def _set_state(self, state: dict) -> None:
        self.user_vectors = state["user_vectors"].astype(np.float32)
        self.item_vectors = state["item_vectors"].astype(np.float32)
        self.repeat_bonus = sp.csr_matrix(state["repeat_bonus"], dtype=np.float32)
        self.prior_weight = float(state["prior_weight"]) if "prior_weight" in state else None
        self._set_tail_state(state)


def _check_prior(rank, boost) -> None:
    """Refuse a carried-prior setting that is not a whole rank >= 0 and a boost > 0 (a boost of 0 would erase the
    factors it rescales; rank 0 is the way to carry no prior)."""
    if int(rank) != rank or rank < 0 or not boost > 0:
        raise ValueError(f"student: prior_rank (setting student_prior_rank) must be a whole number >= 0 and "
                         f"prior_boost (student_prior_boost) > 0, not {rank!r} and {boost!r}")

"""What the student learns from the teacher: its soft top-N lists as targets, its item-item prior as factors.

Ranking distillation (Tang & Wang, KDD 2018; Hinton et al. 2015): each training user's teacher list with its scores,
softened by a temperature, is a target for the student's softmax over the catalogue. The teacher's EASE prior
(X B) is carried as rank-r factors P (n_users, r) and Q (n_items, r), P Q^T ~ X B, each user's row standardised as
the teacher adds it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from recsys_tasks.models.device import batch_size_for
from recsys_tasks.models.sequence_net import SequenceNet, mask_seen
from recsys_tasks.models.sequence_training import all_items, sampled_items

if TYPE_CHECKING:
    from recsys_tasks.models.student import Student


def history_matrix(sequences: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Return the (n_users, n_items) 0/1 matrix of the items in each history."""
    rows = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    cols = np.concatenate(sequences) if sequences else np.zeros(0, dtype=np.int64)
    m = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(sequences), n_items))
    m.data[:] = 1.0
    return m


def low_rank_prior(prior, n_items: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (user factors (n_users, r), item factors (n_items, r)) float32 with P @ Q.T ~ the prior's scores.

    prior: a fitted EASE (X (n_users, m) on its kept items, B (m, m)). B ~ U_r S_r V_r^T (randomised SVD), so
    X B ~ (X U_r S_r) V_r^T; items the prior does not cover get zero factors. Each user's scores have std 1.
    """
    weights = torch.as_tensor(prior.weights, dtype=torch.float32)
    rank = min(rank, weights.shape[0])
    u, s, v = torch.svd_lowrank(weights, q=min(rank + 10, weights.shape[0]), niter=4)
    left = (u[:, :rank] * s[:rank]).numpy()
    users = np.asarray(prior.user_items @ left, dtype=np.float32)
    items = np.zeros((n_items, rank), dtype=np.float32)
    items[prior.kept_items] = v[:, :rank].numpy()
    # each user's row of scores standardised, as the teacher adds it: std_u^2 = P_u G P_u^T / n - (P_u . mean(Q))^2
    gram = items.T @ items / n_items
    mean = items.mean(axis=0)
    var = np.einsum("ur,rs,us->u", users, gram, users) - (users @ mean) ** 2
    users /= np.sqrt(np.maximum(var, 1e-12))[:, None]
    users[var <= 1e-12] = 0.0
    return users, items


def soft_targets(top_items: np.ndarray, top_scores: np.ndarray, temperature: float) -> np.ndarray:
    """Return softmax(score / T) over each row's listed items (0 where the list is padded), float32."""
    weights = np.where(top_items >= 0, top_scores / temperature, -np.inf)
    with np.errstate(invalid="ignore"):
        p = np.exp(weights - weights.max(axis=1, keepdims=True))
        return np.nan_to_num(p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def distillation_loss(student: "Student", top_items: np.ndarray, top_scores: np.ndarray, device: torch.device,
                       generator: torch.Generator, again: sp.csr_matrix | None = None,
                       new_lists: tuple[np.ndarray, np.ndarray] | None = None,
                       prior: tuple[np.ndarray, np.ndarray] | None = None):
    """Return extra_loss(net, step): the teacher's soft top-N lists against the student's softmax, one user batch.

    new_lists: the teacher's lists without each user's history, learned against the student's softmax with the
    history hidden (a second term of the same weight). prior: (user, item) factors of the teacher's prior, added
    to the student's logits with the net's learned weight (the network learns what the prior leaves)."""
    has_list = np.flatnonzero((top_items >= 0).any(axis=1) & (student.tail_tokens > 0).any(axis=1))
    teacher_p = soft_targets(top_items, top_scores, student.temperature)
    new_p = soft_targets(*new_lists, student.temperature) if new_lists is not None else None
    sampled = student.n_items > student.full_softmax_max_items
    batch = batch_size_for(device, student.batch_size, student.cuda_batch_size)
    if prior is not None:
        prior_users, prior_items = (torch.as_tensor(f, device=device) for f in prior)

    def loss(net: SequenceNet, step: int) -> torch.Tensor:
        if len(has_list) == 0:
            return torch.zeros((), device=device)
        pick = has_list[torch.randint(0, len(has_list), (min(batch, len(has_list)),), generator=generator).numpy()]
        tokens, counts, ages = student._tail(pick, device)
        listed = torch.as_tensor(top_items[pick], device=device)
        listed_new = torch.as_tensor(new_lists[0][pick], device=device) if new_p is not None else None
        if sampled:
            wanted = listed if listed_new is None else torch.cat([listed, listed_new], dim=1)
            items, position = sampled_items(student.n_items, tokens, wanted, student.negatives, generator, device)
        else:
            items, position = all_items(student.n_items, device)
        targets = position[listed + 1]
        users = torch.as_tensor(pick, device=device)
        shift = net.user_residual(users) if hasattr(net, "user_residual") else None
        logits = net.last_logits(tokens, counts, ages, net.tower(items), position, shift)
        if again is not None:
            dense = torch.as_tensor(again[pick].toarray(), device=device)
            logits = logits + net.again_weight * (dense if items is None else dense[:, items])
        if prior is not None:
            side = prior_items if items is None else prior_items[items]
            logits = logits + net.prior_weight * (prior_users[users] @ side.T)
        rows = torch.arange(len(pick), device=device)
        last = torch.full_like(rows, tokens.shape[1] - 1)
        if not student.uses_repeats:
            logits = mask_seen(logits, tokens, position, rows, last, targets)
        total = soft_cross_entropy(logits, targets, torch.as_tensor(teacher_p[pick], device=device))
        if listed_new is not None:
            targets_new = position[listed_new + 1]
            hidden = mask_seen(logits, tokens, position, rows, last, targets_new)
            total = total + soft_cross_entropy(hidden, targets_new, torch.as_tensor(new_p[pick], device=device))
        return student.distill_weight * total

    return loss


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Return mean over rows of -sum_j p_j log softmax(logits)[targets_j] (targets -1: padding, skipped)."""
    logp = torch.log_softmax(logits.float(), dim=-1).gather(1, targets.clamp(min=0))
    return -(p * torch.where(targets >= 0, logp, torch.zeros_like(logp))).sum(-1).mean()

"""The torch network shared by the teacher and the student: fused item tower, history encoder, repeat head.

Item tower: e_i = LayerNorm(W_text t_i + id_i [item seen in training] + sum_a emb_a[attr_a(i)] + W_img img_i),
so an item never seen in training still has a representation (its text and attributes).
History encoder: a causal transformer (teacher; SASRec, Kang & McAuley 2018, with a full-softmax loss) or a
recency-weighted pooling of the history (student). Both map tokens (B, L) to states (B, L, dim).
Repeat head ("buy it again"): every item of the window gets bonus[count bucket, lag bucket] + gate(state) added
to its logit, where count = times the user had it so far and lag = events since its last occurrence.
Logits (P, C) = exp(s) states @ e_candidates^T / sqrt(dim) (+ repeat bonus) for P chosen (window, position)
pairs; C is the catalogue or a sampled subset of it.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

COUNT_BUCKETS = 12  # log2 buckets of "times bought so far"
LAG_BUCKETS = 16  # 0, then log2 buckets of "events since"


class ItemTower(nn.Module):
    """Fuse text, ID, categorical attributes and dense vectors (e.g. an image embedding) into one item vector."""

    def __init__(self, dim: int, text: np.ndarray | None, id_known: np.ndarray,
                 categorical: dict[str, tuple[np.ndarray, int]], dense: dict[str, np.ndarray],
                 id_dropout: float = 0.0) -> None:
        super().__init__()
        n_items = len(id_known)
        self.id_dropout = id_dropout
        self.register_buffer("id_known", torch.as_tensor(id_known, dtype=torch.float32))
        self.ids = nn.Embedding(n_items, dim)
        nn.init.normal_(self.ids.weight, std=0.02)
        self.register_buffer("text", torch.as_tensor(np.zeros((n_items, 0)) if text is None else text,
                                                     dtype=torch.float32))
        self.text_proj = nn.Linear(self.text.shape[1], dim, bias=False) if self.text.shape[1] else None
        self.cat_names = sorted(categorical)
        for name in self.cat_names:
            codes, size = categorical[name]
            self.register_buffer(f"cat_{name}", torch.as_tensor(codes, dtype=torch.long))
            setattr(self, f"cat_emb_{name}", nn.Embedding(size, dim))
        self.dense_names = sorted(dense)
        for name in self.dense_names:
            self.register_buffer(f"dense_{name}", torch.as_tensor(dense[name], dtype=torch.float32))
            setattr(self, f"dense_proj_{name}", nn.Linear(dense[name].shape[1], dim, bias=False))
        self.norm = nn.LayerNorm(dim)

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Return (len(items), dim) vectors; items None means the whole catalogue."""
        if items is None:
            items = torch.arange(len(self.id_known), device=self.id_known.device)
        keep = self.id_known[items]
        if self.training and self.id_dropout > 0:
            # Items sometimes lose their ID part, so text and attributes learn to stand alone (cold items).
            keep = keep * (torch.rand_like(keep) >= self.id_dropout)
        x = self.ids(items) * keep[:, None]
        if self.text_proj is not None:
            x = x + self.text_proj(self.text[items])
        for name in self.cat_names:
            x = x + getattr(self, f"cat_emb_{name}")(getattr(self, f"cat_{name}")[items])
        for name in self.dense_names:
            x = x + getattr(self, f"dense_proj_{name}")(getattr(self, f"dense_{name}")[items])
        return self.norm(x)


class CausalBlock(nn.Module):
    """Pre-norm transformer block: causal self-attention then a GELU feed-forward layer."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x (B, L, dim), allowed (B, 1, L, L) bool: query t may read key s."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                             dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerEncoder(nn.Module):
    """Causal transformer over the window; position embeddings count back from the newest column."""

    def __init__(self, dim: int, max_len: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.pos = nn.Embedding(max_len, dim)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList(CausalBlock(dim, heads, dropout) for _ in range(layers))
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, emb: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """emb (B, L, dim) item vectors of tokens (B, L) -> states (B, L, dim)."""
        n = tokens.shape[1]
        # windows may arrive trimmed of all-padding columns: positions still count back from the newest column
        x = self.drop(emb * math.sqrt(emb.shape[-1]) + self.pos.weight[self.pos.num_embeddings - n:])
        causal = torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril()
        real = tokens != 0
        # a query always reads itself, so no row is fully masked even inside the padding
        allowed = causal & (real[:, None, :] | torch.eye(n, dtype=torch.bool, device=tokens.device))
        allowed = allowed[:, None]
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)


class PooledEncoder(nn.Module):
    """A learned recency-weighted average of the history: state_t = W sum_s a(t - s) e_s / sum_s a(t - s)."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.lag_logit = nn.Parameter(-0.1 * torch.arange(max_len, dtype=torch.float32))
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, emb: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        lag = (torch.arange(n, device=tokens.device)[:, None] - torch.arange(n, device=tokens.device)[None, :])
        weight = torch.where(lag >= 0, torch.exp(self.lag_logit[lag.clamp(min=0)]), torch.zeros((), device=lag.device))
        weight = weight[None] * (tokens != 0)[:, None, :].to(weight.dtype)
        pooled = weight @ emb / weight.sum(-1, keepdim=True).clamp(min=1e-6)
        return self.norm(self.proj(pooled))


def count_bucket(counts: torch.Tensor) -> torch.Tensor:
    return torch.log2(counts.clamp(min=1)).floor().long().clamp(max=COUNT_BUCKETS - 1)


def lag_bucket(lag: torch.Tensor) -> torch.Tensor:
    return torch.where(lag > 0, 1 + torch.log2(lag.clamp(min=1).float()).floor().long(),
                       torch.zeros_like(lag)).clamp(max=LAG_BUCKETS - 1)


class RepeatHead(nn.Module):
    """Bonus for re-buying an item of the window: how often, how long ago, the item's own habit, the user's state."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(COUNT_BUCKETS, LAG_BUCKETS))
        self.gate = nn.Linear(dim, 1)
        self.habit = nn.Linear(dim, 1, bias=False)  # some items are restocked, others bought once
        self.slope = nn.Parameter(torch.zeros(2))  # smooth terms in log count and log lag between the buckets
        for layer in (self.gate, self.habit):
            nn.init.zeros_(layer.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, tokens: torch.Tensor, counts: torch.Tensor, lag: torch.Tensor, states: torch.Tensor,
                rows: torch.Tensor, cols: torch.Tensor, habit: torch.Tensor) -> torch.Tensor:
        """Return bonus (P, L) for the items of window rows[p] seen from position cols[p].

        lag (P, L) events or days since each event; states (P, dim); habit (P, L) the items' own re-buy scores.
        An item counts once per query: at its newest occurrence not after the query; pads and later events get 0.
        """
        n = tokens.shape[1]
        at = torch.arange(n, device=tokens.device)
        same = tokens[:, :, None] == tokens[:, None, :]  # (B, s, s')
        after = torch.where(same & (at[None, None, :] > at[None, :, None]), at[None, None, :],
                            torch.full_like(same, n, dtype=torch.long)).amin(-1)  # (B, s): its next occurrence
        q = cols[:, None]
        valid = (tokens[rows] != 0) & (at[None, :] <= q) & (after[rows] > q)
        lag = lag.clamp(min=0)
        bonus = (self.table[count_bucket(counts[rows]), lag_bucket(lag)] + self.gate(states) + habit
                 + self.slope[0] * torch.log1p(counts[rows]) + self.slope[1] * torch.log1p(lag.to(counts.dtype)))
        return torch.where(valid, bonus, torch.zeros((), device=bonus.device, dtype=bonus.dtype))


class SequenceNet(nn.Module):
    """Item tower + history encoder (+ repeat head): logits of every candidate item after chosen history prefixes.

    lag_in_days: the repeat head reads days since an event (ages given) instead of events since it.
    """

    def __init__(self, tower: ItemTower, encoder: nn.Module, dim: int, repeat_aware: bool,
                 lag_in_days: bool = False) -> None:
        super().__init__()
        self.tower, self.encoder = tower, encoder
        self.repeat = RepeatHead(dim) if repeat_aware else None
        self.log_scale = nn.Parameter(torch.zeros(()))  # logits = exp(log_scale) h.e / sqrt(dim)
        self.dim, self.lag_in_days = dim, lag_in_days

    def states(self, tokens: torch.Tensor, item_vectors: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Return (B, L, dim) states; item_vectors (C, dim) are candidates, position (n_items + 1,) maps token -> row."""
        padded = torch.cat([torch.zeros_like(item_vectors[:1]), item_vectors])
        return self.encoder(padded[position[tokens] + 1], tokens)

    def logits(self, tokens: torch.Tensor, counts: torch.Tensor, ages: torch.Tensor, item_vectors: torch.Tensor,
               position: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, now: torch.Tensor | None = None,
               shift: torch.Tensor | None = None) -> torch.Tensor:
        """Return logits (P, C) over the candidates after position cols[p] of window rows[p] (states + shift).

        ages (B, L) days before the cut-off; now (P,) the age of each query moment (default: its event's age).
        """
        states = self.states(tokens, item_vectors, position)[rows, cols]
        if shift is not None:
            states = states + shift
        out = (states @ item_vectors.T) * (self.log_scale.exp() / math.sqrt(self.dim))
        if self.repeat is not None:
            bonus, where = self.repeat_bonus(tokens, counts, ages, item_vectors, position, states, rows, cols, now)
            out = out.scatter_add(1, where, bonus.to(out.dtype))
        return out

    def repeat_bonus(self, tokens: torch.Tensor, counts: torch.Tensor, ages: torch.Tensor,
                     item_vectors: torch.Tensor, position: torch.Tensor, states: torch.Tensor, rows: torch.Tensor,
                     cols: torch.Tensor, now: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the repeat head's bonus (P, L) and the candidate row (P, L) of each window item it belongs to."""
        if self.lag_in_days:
            now = ages[rows, cols] if now is None else now
            lag = (ages[rows] - now[:, None]).floor().long()
        else:
            lag = cols[:, None] - torch.arange(tokens.shape[1], device=tokens.device)[None, :]
        where = position[tokens[rows]].clamp(min=0)
        habit = self.repeat.habit(item_vectors).squeeze(-1)[where]
        return self.repeat(tokens, counts, lag, states, rows, cols, habit), where

    def last_logits(self, tokens: torch.Tensor, counts: torch.Tensor, ages: torch.Tensor,
                    item_vectors: torch.Tensor, position: torch.Tensor,
                    shift: torch.Tensor | None = None) -> torch.Tensor:
        """Return logits (B, C) at the cut-off (age 0), after each window's newest event."""
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        return self.logits(tokens, counts, ages, item_vectors, position, rows,
                           torch.full_like(rows, tokens.shape[1] - 1), torch.zeros_like(rows, dtype=ages.dtype),
                           shift)


def mask_seen(logits: torch.Tensor, tokens: torch.Tensor, position: torch.Tensor, rows: torch.Tensor,
              cols: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return logits with the window's items up to each query set to -inf, except the query's own targets.

    For shops that never re-buy (reviews), the served list drops the history: training then ranks what is left.
    """
    n_cand = logits.shape[1]
    at = torch.arange(tokens.shape[1], device=tokens.device)
    seen = (tokens[rows] != 0) & (at[None, :] <= cols[:, None])
    index = torch.where(seen, position[tokens[rows]], torch.full_like(tokens[rows], n_cand))
    mask = torch.zeros(logits.shape[0], n_cand + 1, dtype=torch.bool, device=logits.device)
    mask.scatter_(1, index, True)
    mask.scatter_(1, torch.where(targets >= 0, targets, torch.full_like(targets, n_cand)), False)
    return logits.masked_fill(mask[:, :n_cand], float("-inf"))


def window_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -mean log softmax(logits)[targets]; logits (P, C), targets (P, W) candidate rows, -1 = none."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    has = targets >= 0
    picked = (logp.gather(1, targets.clamp(min=0)) * has).sum(-1) / has.sum(-1).clamp(min=1)
    return -picked.mean()

"""What the teacher and the student share: the users' newest windows, the fused item tower, scoring, save/load.

A sequence recommender keeps each user's newest max_len events (tokens, running counts, days before the cut-off;
left-padded) and a SequenceNet (models/sequence_net.py): the item tower that fuses text, ID and attributes, and an
encoder over the window. Shapes: tail_tokens (n_users, max_len) -> logits (n_users, n_items) after the newest event.
"""
from __future__ import annotations

import numpy as np
import torch

from recsys_tasks.models.base import Evidence, Recommender, TrainingData
from recsys_tasks.models.device import DeviceCopies, autocast, check_precision, torch_device
from recsys_tasks.models.net_state import build_tower, net_arrays, restore_net
from recsys_tasks.models.sequence_net import SequenceNet
from recsys_tasks.models.sequence_training import all_items, trimmed
from recsys_tasks.models.sequences import last_windows, repeat_share

REPEAT_SHARE = 0.05  # "auto" repeat awareness: on when at least this share of events re-buys an item


def repeat_awareness(setting: str | bool, sequences: list[np.ndarray]) -> bool:
    """Resolve "auto" | true | false against the share of repeated events in the histories."""
    if isinstance(setting, str) and setting.lower() == "auto":
        return repeat_share(sequences) >= REPEAT_SHARE
    return str(setting).lower() in ("1", "true", "yes")


class SequenceRecommender(Recommender):
    """What the teacher and the student share: histories, the network, scoring the newest window, save/load."""

    def _init_sequence(self, dim, max_len, id_dropout, repeat_aware, device, seed, precision="auto") -> None:
        self.dim, self.max_len, self.id_dropout = dim, max_len, id_dropout
        self.repeat_aware, self.device, self.seed = repeat_aware, device, seed
        self.precision = check_precision(precision)  # str: auto (bf16 on CUDA that supports it) | bf16 | fp32 (models/device.py)
        self.net: SequenceNet | None = None
        self.tail_tokens: np.ndarray | None = None  # (n_users, max_len) int64 newest events, left-padded
        self.tail_counts: np.ndarray | None = None  # (n_users, max_len) float32 running counts of those events
        self.tail_ages: np.ndarray | None = None  # (n_users, max_len) float32 their days before the cut-off
        self.uses_repeats = False
        self.uses_days = False
        self.fit_report: dict = {}
        self._on_device = DeviceCopies()  # fitted arrays copied where score_tensor computes, once per fit and device

    def _encoder(self):
        raise NotImplementedError

    def _build(self, data: TrainingData, sequences: list[np.ndarray], ages: list[np.ndarray] | None,
               min_item_count: int) -> SequenceNet:
        self.uses_repeats = repeat_awareness(self.repeat_aware, sequences)
        self.uses_days = ages is not None
        tower = build_tower(data, sequences, self.dim, self.id_dropout, min_item_count)
        users = np.arange(data.n_users)
        self.tail_tokens, self.tail_counts, self.tail_ages = last_windows(sequences, users, self.max_len, ages)
        return SequenceNet(tower, self._encoder(), self.dim, self.uses_repeats, self.uses_days)

    def _tail(self, rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the newest windows of user rows as tensors (tokens, counts, ages), trimmed of shared padding."""
        cols = trimmed(self.tail_tokens[rows])
        return (torch.as_tensor(self.tail_tokens[rows][:, cols], device=device),
                torch.as_tensor(self.tail_counts[rows][:, cols], device=device),
                torch.as_tensor(self.tail_ages[rows][:, cols], device=device))

    def _torch_device(self) -> torch.device:
        return torch_device(self.device)

    def score_tensor(self, user_idx: np.ndarray) -> torch.Tensor:
        """Return score(user_idx) as a new float32 tensor computed by torch on the model's device, where top_k selects,
        so on a GPU only each user's k best cross to the host.

        The CPU takes the same path, so every CPU run also runs the GPU's arithmetic and selects in torch's threads:
        NumPy's BLAS computes the student's thin product faster alone, but its worker threads then spin beside
        torch's through the top-k that follows and slow it more than they gained (bench/README "Speed").
        """
        self._check_fitted()
        return self._scores_on(np.atleast_1d(np.asarray(user_idx, dtype=np.int64)), self._torch_device())

    def _scores_on(self, user_idx: np.ndarray, device: torch.device) -> torch.Tensor:
        """Return score(user_idx) for int64 user rows, computed by torch on device."""
        raise NotImplementedError

    @torch.no_grad()
    def _logit_chunks(self, user_idx: np.ndarray, device: torch.device, chunk: int = 256):
        """Yield (positions in user_idx, float32 logits on device) after each user's newest event, a chunk of users
        of like history length at a time (short histories batched together)."""
        net = self.net.to(device).eval()
        _, position = all_items(self.n_items, device)
        with autocast(device, self.precision):
            vectors = net.tower(None)
        order = np.argsort((self.tail_tokens[user_idx] != 0).sum(axis=1), kind="stable")
        for start in range(0, len(order), chunk):
            pick = order[start:start + chunk]
            with autocast(device, self.precision):  # entered per chunk: the caller's work between chunks runs outside
                logits = net.last_logits(*self._tail(user_idx[pick], device), vectors, position)
            yield pick, logits.float()

    def _last_logits(self, user_idx: np.ndarray) -> np.ndarray:
        """Return (len(user_idx), n_items) float32 logits on the host, each chunk brought there as it is computed."""
        out = np.empty((len(user_idx), self.n_items), dtype=np.float32)
        for pick, logits in self._logit_chunks(user_idx, self._torch_device()):
            out[pick] = logits.cpu().numpy()
        return out

    def _logits_on(self, user_idx: np.ndarray, device: torch.device) -> torch.Tensor:
        """Return (len(user_idx), n_items) float32 logits left on device."""
        out = torch.empty((len(user_idx), self.n_items), dtype=torch.float32, device=device)
        for pick, logits in self._logit_chunks(user_idx, device):
            out[torch.as_tensor(pick, device=device)] = logits
        return out

    def _repeat_evidence(self, user_idx: int, item: int) -> Evidence | None:
        tokens, counts = self.tail_tokens[user_idx], self.tail_counts[user_idx]
        where = np.flatnonzero(tokens == item + 1)
        if not self.uses_repeats or len(where) == 0:
            return None
        return Evidence("repeat", because_item=int(item), count=int(counts[where[-1]]))

    def _item_vectors(self, items: np.ndarray) -> np.ndarray:
        """Return the model's (len(items), dim) item vectors."""
        with torch.no_grad():
            return self.net.cpu().tower(torch.as_tensor(items, dtype=torch.long)).numpy()

    def _closest_history_item(self, user_idx: int, items: np.ndarray) -> list[int | None]:
        """Return, per item, the history item whose vector is closest to it (the model's own similarity)."""
        history = np.unique(self.tail_tokens[user_idx][self.tail_tokens[user_idx] > 0] - 1)
        if len(history) == 0:
            return [None] * len(items)
        vectors = self._item_vectors(np.r_[history, items])
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
        sims = vectors[len(history):] @ vectors[:len(history)].T
        return [int(history[j]) for j in sims.argmax(axis=1)]

    def explain(self, user_idx: int, item_idx: np.ndarray) -> list[Evidence]:
        self._check_fitted()
        items = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
        closest = self._closest_history_item(user_idx, items)
        out = []
        for item, near in zip(items, closest):
            again = self._repeat_evidence(user_idx, int(item))
            out.append(again if again is not None else Evidence(self.name, because_item=near))
        return out

    def _sequence_state(self) -> dict:
        return {**net_arrays(self.net), **self._tail_state()}

    def _tail_state(self) -> dict:
        return {"tail_tokens": self.tail_tokens.astype(np.int32), "tail_counts": self.tail_counts,
                "tail_ages": self.tail_ages, "uses_repeats": np.asarray(self.uses_repeats),
                "uses_days": np.asarray(self.uses_days)}

    def _set_tail_state(self, state: dict) -> None:
        self.uses_repeats = bool(state["uses_repeats"])
        self.uses_days = bool(state["uses_days"])
        self.tail_tokens = state["tail_tokens"].astype(np.int64)
        self.tail_counts = state["tail_counts"].astype(np.float32)
        self.tail_ages = state["tail_ages"].astype(np.float32)

    def _set_sequence_state(self, state: dict) -> None:
        self._set_tail_state(state)
        self.net = restore_net(state, self.dim, self.id_dropout, self._encoder, self.uses_repeats, self.uses_days)

"""Build a SequenceNet from TrainingData, and save or restore it as plain NumPy arrays (never a pickle)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from recsys_tasks.models.base import TrainingData
from recsys_tasks.models.item_inputs import tower_inputs
from recsys_tasks.models.sequence_net import ItemTower, SequenceNet

PREFIX = "net."  # key prefix of the network's arrays inside a model's saved state


def item_counts(sequences: list[np.ndarray], n_items: int) -> np.ndarray:
    """Return how often each item occurs in the histories, (n_items,) int64."""
    flat = np.concatenate(sequences) if sequences else np.zeros(0, dtype=np.int64)
    return np.bincount(flat, minlength=n_items).astype(np.int64)


def build_tower(data: TrainingData, sequences: list[np.ndarray], dim: int, id_dropout: float,
                min_item_count: int) -> ItemTower:
    """Return the item tower for data: an ID embedding only for items seen at least min_item_count times."""
    categorical, dense = tower_inputs(data.item_attributes, data.n_items)
    known = item_counts(sequences, data.n_items) >= min_item_count
    text = None if data.item_text_embedding is None else np.asarray(data.item_text_embedding, dtype=np.float32)
    return ItemTower(dim, text, known, categorical, dense, id_dropout)


def net_arrays(net: nn.Module) -> dict[str, np.ndarray]:
    """Return every parameter and buffer as float32/int64 NumPy arrays under PREFIX."""
    return {PREFIX + k: v.detach().float().cpu().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
            for k, v in net.state_dict().items()}


def restore_net(state: dict[str, np.ndarray], dim: int, id_dropout: float,
                encoder: Callable[[], nn.Module], repeat_aware: bool, lag_in_days: bool) -> SequenceNet:
    """Rebuild the network whose arrays net_arrays wrote and load them."""
    arrays = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    categorical = {k[len("tower.cat_"):]: (arrays[k], arrays[f"tower.cat_emb_{k[len('tower.cat_'):]}.weight"].shape[0])
                   for k in arrays if k.startswith("tower.cat_") and not k.startswith("tower.cat_emb_")}
    dense = {k[len("tower.dense_"):]: arrays[k] for k in arrays
             if k.startswith("tower.dense_") and not k.startswith("tower.dense_proj_")}
    text = arrays["tower.text"]
    tower = ItemTower(dim, text if text.shape[1] else None, arrays["tower.id_known"] > 0, categorical, dense,
                      id_dropout)
    net = SequenceNet(tower, encoder(), dim, repeat_aware, lag_in_days)
    net.load_state_dict({k: torch.as_tensor(v) for k, v in arrays.items()})
    return net.eval()

"""One training loop for the sequence models: full softmax over the catalogue, sampled past a size, in a time budget."""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from recsys_tasks.models import distributed
from recsys_tasks.models.device import TimeBudget, autocast
from recsys_tasks.models.sequence_net import SequenceNet, mask_seen, window_loss
from recsys_tasks.models.sequences import Windows
from recsys_tasks.runlog import Progress

log = logging.getLogger(__name__)


def all_items(n_items: int, device: torch.device) -> tuple[None, torch.Tensor]:
    """Return (None = every item, token -> row map) for a full softmax; token 0 (pad) maps to -1."""
    return None, torch.arange(-1, n_items, device=device)


def sampled_items(n_items: int, tokens: torch.Tensor, targets: torch.Tensor, negatives: int,
                  generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return candidate items (C,) = the batch's items and targets plus uniform negatives, and the token -> row map.

    The batch's own items are the hard (popular) negatives of the sampled softmax; uniform ones cover the tail.
    """
    drawn = torch.randint(0, n_items, (negatives,), generator=generator).to(device)
    items = torch.cat([tokens[tokens > 0] - 1, targets[targets >= 0], drawn]).unique()
    position = torch.full((n_items + 1,), -1, dtype=torch.long, device=device)
    position[items + 1] = torch.arange(len(items), device=device)
    return items, position


def trimmed(tokens: np.ndarray) -> slice:
    """Return the columns of left-padded windows that hold at least one event (the rest is padding for all)."""
    real = (tokens != 0).any(axis=0)
    first = int(np.argmax(real)) if real.any() else tokens.shape[1] - 1
    return slice(first, tokens.shape[1])


def length_batches(windows: Windows, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """Return shuffled batches of windows of similar length, so a batch of short histories is short to compute."""
    n = len(windows)
    if n == 0:
        return []
    lengths = (windows.tokens != 0).sum(axis=1)
    noise = torch.rand(n, generator=generator).numpy()  # shuffles within a length
    order = np.lexsort((noise, lengths))
    batches = [order[s:s + batch_size] for s in range(0, n, batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).numpy()]


class _StepLoss(torch.nn.Module):
    """One step's loss as a module over the net, so DistributedDataParallel can wrap it: DDP syncs the gradients of
    the parameters its forward used, and the loss reaches the net through more than its forward (tower, logits,
    the student's distillation term)."""

    def __init__(self, net: SequenceNet, compute: Callable[[SequenceNet, np.ndarray, int], torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.compute = compute

    def forward(self, rows: np.ndarray, step: int) -> torch.Tensor:
        return self.compute(self.net, rows, step)


def train_net(net: SequenceNet, windows: Windows, n_items: int, *, epochs: int, batch_size: int, lr: float,
              weight_decay: float, budget: TimeBudget, device: torch.device, generator: torch.Generator,
              full_softmax_max_items: int, negatives: int, mask_history: bool = False,
              extra_loss: Callable[[SequenceNet, int], torch.Tensor] | None = None,
              window_weight: float = 1.0, label: str = "epochs", precision: str = "auto") -> list[float]:
    """Train on every window for `epochs` passes or until the budget is spent; return the mean loss of each pass.

    mask_history: the items a user already has are no competitors in the softmax (shops that never re-buy).
    extra_loss(net, step) is added to window_weight x the windows' loss (the student's distillation term).
    label names the model in the progress line each epoch logs ("teacher epochs"). precision: device.autocast's.
    Under torch.distributed (models/distributed.py) each process trains on its share of every epoch's batches,
    DistributedDataParallel averages the gradients, and the processes stop together when the first one's budget
    is spent; the losses returned are the mean over the processes.
    """
    rank, world = distributed.world()
    progress = Progress(label, epochs, "epochs", every_s=0.0, logger=log, limit_s=budget.seconds)
    net.to(device).train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sampled = n_items > full_softmax_max_items

    def compute(net: SequenceNet, rows: np.ndarray, step: int) -> torch.Tensor:
        loss = torch.zeros((), device=device)
        with autocast(device, precision):
            if len(rows):
                cols = trimmed(windows.tokens[rows])
                tokens = torch.as_tensor(windows.tokens[rows][:, cols], device=device)
                counts = torch.as_tensor(windows.counts[rows][:, cols], device=device)
                ages = torch.as_tensor(windows.ages[rows][:, cols], device=device)
                targets = torch.as_tensor(windows.targets[rows][:, cols], device=device)
                if sampled:
                    items, position = sampled_items(n_items, tokens, targets, negatives, generator, device)
                else:
                    items, position = all_items(n_items, device)
                # only positions with a target are scored: left padding costs no softmax
                rows_p, cols_p = (targets >= 0).any(-1).nonzero(as_tuple=True)
                vectors = net.tower(items)
                logits = net.logits(tokens, counts, ages, vectors, position, rows_p, cols_p)
                wanted = position[targets[rows_p, cols_p] + 1]
                if mask_history:
                    logits = mask_seen(logits, tokens, position, rows_p, cols_p, wanted)
                loss = window_weight * window_loss(logits, wanted)
            if extra_loss is not None:
                loss = loss + extra_loss(net, step)
        return loss

    step_loss = distributed.data_parallel(_StepLoss(net, compute), device)
    order, generator = distributed.generators(generator, rank, world)
    history: list[float] = []
    cap = f", time cap {budget.seconds:.0f}s" if budget.seconds else ""
    step = 0
    spent = False
    for epoch in range(epochs):
        epoch_started = budget.elapsed()
        batches = length_batches(windows, batch_size, order) or [np.zeros(0, dtype=np.int64)]
        mine = distributed.share(batches, rank, world)
        losses = []
        for rows in mine:
            loss = step_loss(rows, step)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimiser.step()
            losses.append(float(loss.detach()))
            step += 1
            spent = distributed.any_true(budget.spent(), device)
            if spent:
                break
        history.append(distributed.mean(float(np.mean(losses)) if losses else float("nan"), device))
        trained = world * sum(len(rows) for rows in mine[:len(losses)]) / max(budget.elapsed() - epoch_started, 1e-9)
        progress.advance(1, f"loss {history[-1]:.4f}, {trained:,.0f} windows/s{cap}")
        if spent:
            log.info("time budget of %.0fs spent after %d epochs", budget.seconds, epoch + 1)
            break
    net.eval()
    return history

"""The recommender interface: training data in, one dense score per (user, item) out.

Every model, from the popularity baseline to a GPU transformer, sits behind `Recommender`: it is fit on a
`TrainingData`, scores users by row index, explains a recommendation with `Evidence`, and saves itself as JSON
plus NumPy arrays (never a pickle). Models that need a torch device take it as a constructor parameter and still
return host NumPy arrays from `score`; those that also offer `score_tensor` (a float32 tensor where they compute)
have their top-k selected there by `top_k`.
"""
from __future__ import annotations

import datetime as dt
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # polars is only needed by from_frames
    import polars as pl

FORMAT_VERSION = 1
_CSR = "__csr__"  # npz key infix marking the parts of a saved sparse matrix


def _as_csr(matrix, shape: tuple[int, int], name: str) -> sp.csr_matrix:
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    if csr.shape != shape:
        raise ValueError(f"{name} has shape {csr.shape}, expected {shape}")
    csr.sum_duplicates()
    csr.sort_indices()
    return csr


@dataclass
class TrainingData:
    """What a model may learn from, with users as rows and items as columns.

    Shapes: interactions, purchases, last_purchase_age_days (n_users, n_items) CSR float32;
    recent_popularity (n_items,); user_segment (n_users,) str; item_text_embedding (n_items, d);
    item_attributes name -> (n_items,); user_sequences n_users arrays of item indices, oldest first.
    last_purchase_age_days shares the sparsity of purchases: a missing entry reads as 0 days.
    """

    users: list[str]  # row index -> user_id
    items: list[str]  # column index -> item_id
    interactions: sp.csr_matrix  # event-type x recency weights, computed by the pipeline
    purchases: sp.csr_matrix  # purchase counts; all zero for review data
    last_purchase_age_days: sp.csr_matrix | None  # days between the last purchase and as_of
    recent_popularity: np.ndarray  # popularity over the recent window
    user_segment: np.ndarray  # segment label (e.g. country), "" when unknown
    as_of: dt.date
    item_text_embedding: np.ndarray | None = None
    item_attributes: dict[str, np.ndarray] | None = None
    user_sequences: list[np.ndarray] | None = None
    item_first_seen_days: np.ndarray | None = None  # (n_items,) days since the catalogue first listed it; NaN unknown

    def __post_init__(self) -> None:
        self.users = [str(u) for u in self.users]
        self.items = [str(i) for i in self.items]
        shape = (len(self.users), len(self.items))
        self.interactions = _as_csr(self.interactions, shape, "interactions")
        self.purchases = _as_csr(self.purchases, shape, "purchases")
        if self.last_purchase_age_days is not None:
            self.last_purchase_age_days = _as_csr(self.last_purchase_age_days, shape, "last_purchase_age_days")
        self.recent_popularity = np.asarray(self.recent_popularity, dtype=np.float64)
        if self.recent_popularity.shape != (shape[1],):
            raise ValueError(f"recent_popularity has shape {self.recent_popularity.shape}, expected ({shape[1]},)")
        self.user_segment = np.asarray(["" if s is None else str(s) for s in self.user_segment], dtype=str)
        if self.user_segment.shape != (shape[0],):
            raise ValueError(f"user_segment has shape {self.user_segment.shape}, expected ({shape[0]},)")
        if self.item_text_embedding is not None and len(self.item_text_embedding) != shape[1]:
            raise ValueError("item_text_embedding needs one row per item")
        if self.item_first_seen_days is not None:
            self.item_first_seen_days = np.asarray(self.item_first_seen_days, dtype=np.float64)
            if self.item_first_seen_days.shape != (shape[1],):
                raise ValueError("item_first_seen_days needs one value per item")
        if self.user_sequences is not None and len(self.user_sequences) != shape[0]:
            raise ValueError("user_sequences needs one sequence per user")

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @classmethod
    def from_frames(
        cls,
        interactions: "pl.DataFrame",
        as_of: dt.date,
        popularity: "pl.DataFrame | None" = None,
        users: "pl.DataFrame | None" = None,
        *,
        user_ids: list[str] | None = None,
        item_ids: list[str] | None = None,
        sequences: "pl.DataFrame | None" = None,
        item_text_embedding: np.ndarray | None = None,
        item_attributes: dict[str, np.ndarray] | None = None,
    ) -> "TrainingData":
        """Build the matrices from long frames.

        interactions: user_id, item_id, weight[, purchases][, last_purchase_age_days | last_purchase_ts];
        popularity: item_id, recent_popularity; users: user_id, segment;
        sequences: user_id, item_id and an order column (position or ts).
        Users and items default to the sorted ids seen in the frames; ids outside given lists are an error.
        """
        import polars as pl

        inter = interactions.with_columns(pl.col("user_id").cast(pl.Utf8), pl.col("item_id").cast(pl.Utf8))
        if user_ids is None:
            seen = set(inter["user_id"].to_list())
            if users is not None:
                seen |= set(users["user_id"].cast(pl.Utf8).to_list())
            user_ids = sorted(seen)
        if item_ids is None:
            seen = set(inter["item_id"].to_list())
            if popularity is not None:
                seen |= set(popularity["item_id"].cast(pl.Utf8).to_list())
            item_ids = sorted(seen)
        user_ids, item_ids = [str(u) for u in user_ids], [str(i) for i in item_ids]
        n_users, n_items = len(user_ids), len(item_ids)
        user_map = pl.DataFrame({"user_id": user_ids, "_u": np.arange(n_users, dtype=np.int64)})
        item_map = pl.DataFrame({"item_id": item_ids, "_i": np.arange(n_items, dtype=np.int64)})

        def index(frame: "pl.DataFrame", what: str) -> "pl.DataFrame":
            if "user_id" in what:
                frame = frame.with_columns(pl.col("user_id").cast(pl.Utf8)).join(user_map, on="user_id", how="left")
            if "item_id" in what:
                frame = frame.with_columns(pl.col("item_id").cast(pl.Utf8)).join(item_map, on="item_id", how="left")
            unknown = frame.filter(pl.any_horizontal(pl.col(c).is_null() for c in ("_u", "_i") if c in frame.columns))
            if unknown.height:
                raise ValueError(f"{unknown.height} rows name users or items outside the given lists")
            return frame

        cols = set(inter.columns)
        aggs = [pl.col("weight").cast(pl.Float64).sum().alias("weight")]
        if "purchases" in cols:
            aggs.append(pl.col("purchases").cast(pl.Float64).sum().alias("purchases"))
        if "last_purchase_age_days" in cols:
            aggs.append(pl.col("last_purchase_age_days").cast(pl.Float64).min().alias("age"))
        elif "last_purchase_ts" in cols:
            midnight = dt.datetime.combine(as_of, dt.time())
            age = (pl.lit(midnight) - pl.col("last_purchase_ts").cast(pl.Datetime("us"))).dt.total_seconds() / 86400.0
            aggs.append(age.min().alias("age"))
        long = index(inter.group_by("user_id", "item_id").agg(aggs), "user_id item_id")
        rows, colidx = long["_u"].to_numpy(), long["_i"].to_numpy()
        shape = (n_users, n_items)

        def matrix(values: np.ndarray) -> sp.csr_matrix:
            return sp.csr_matrix((values.astype(np.float32), (rows, colidx)), shape=shape)

        weights = matrix(long["weight"].to_numpy())
        bought = long["purchases"].fill_null(0).to_numpy() if "purchases" in long.columns else np.zeros(long.height)
        purchases = matrix(bought)
        purchases.eliminate_zeros()
        age_matrix = None
        if "age" in long.columns:
            keep = (bought > 0) & long["age"].is_not_null().to_numpy()
            age_matrix = sp.csr_matrix(
                (long["age"].to_numpy()[keep].astype(np.float32), (rows[keep], colidx[keep])), shape=shape
            )

        recent = np.zeros(n_items)
        if popularity is not None:
            pop = index(popularity, "item_id")
            np.add.at(recent, pop["_i"].to_numpy(), pop["recent_popularity"].cast(pl.Float64).fill_null(0).to_numpy())
        segment = np.full(n_users, "", dtype=object)
        if users is not None and "segment" in users.columns:
            seg = index(users.unique("user_id", keep="last", maintain_order=True), "user_id")
            segment[seg["_u"].to_numpy()] = seg["segment"].cast(pl.Utf8).fill_null("").to_list()
        user_sequences = None
        if sequences is not None:
            order = "position" if "position" in sequences.columns else "ts"
            seq = index(sequences, "user_id item_id").sort("_u", order, maintain_order=True)
            user_sequences = [np.zeros(0, dtype=np.int64) for _ in range(n_users)]
            for (u,), group in seq.group_by("_u", maintain_order=True):
                user_sequences[int(u)] = group["_i"].to_numpy().astype(np.int64)
        return cls(
            users=user_ids,
            items=item_ids,
            interactions=weights,
            purchases=purchases,
            last_purchase_age_days=age_matrix,
            recent_popularity=recent,
            user_segment=segment.astype(str),
            as_of=as_of,
            item_text_embedding=item_text_embedding,
            item_attributes=item_attributes,
            user_sequences=user_sequences,
        )


@dataclass
class Evidence:
    """Why one item was recommended; the recommend stage turns it into a sentence with titles."""

    strategy: str  # "popularity" | "segment_popularity" | "repeat" | "itemknn" | "ease" | "new_item" | ...
    because_item: int | None = None  # index of the history item that contributed most
    count: int | None = None  # e.g. times bought
    days_since: int | None = None  # e.g. days since last bought
    segment: str | None = None


class Recommender(ABC):
    """Fit on TrainingData, then score users by row index (higher is better)."""

    name: ClassVar[str]  # registry name, also written into the saved model
    scale_limits: ClassVar[str]  # one line: what grows with the catalogue and how the model caps it

    def __init__(self) -> None:
        self.users: list[str] | None = None
        self.items: list[str] | None = None

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.items)

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters (JSON-safe)."""

    @abstractmethod
    def fit(self, data: TrainingData) -> "Recommender":
        """Learn from data and return self."""

    @abstractmethod
    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Return a new (len(user_idx), n_items) float32 array; -inf where the model cannot rank an item."""

    def log_scores(self, user_idx: np.ndarray) -> np.ndarray:
        """Return the scores as log-probabilities over the catalogue: a log-softmax of each row (-inf stays -inf).

        Models whose scores are calibrated probabilities override it; a Blend adds these up across models.
        """
        return log_softmax_rows(self.score(user_idx))

    @abstractmethod
    def explain(self, user_idx: int, item_idx: np.ndarray) -> list[Evidence]:
        """Return one Evidence per item of item_idx for user row user_idx."""

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray | sp.csr_matrix]:
        """Return the fitted arrays that save writes."""

    @abstractmethod
    def _set_state(self, state: dict[str, np.ndarray | sp.csr_matrix]) -> None:
        """Restore the fitted arrays that load read."""

    def _remember_ids(self, data: TrainingData) -> None:
        self.users, self.items = list(data.users), list(data.items)

    def _check_fitted(self) -> None:
        if self.items is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")

    def save(self, directory: Path) -> None:
        """Write model.json (name, parameters) and arrays.npz (fitted state) into directory."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"name": self.name, "format_version": FORMAT_VERSION, "params": self.get_params()}
        (directory / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        state = {"users": np.asarray(self.users, dtype=str), "items": np.asarray(self.items, dtype=str)}
        state.update(self._state())
        np.savez(directory / "arrays.npz", **_pack(state))

    @classmethod
    def load(cls, directory: Path) -> "Recommender":
        """Read a model written by save."""
        directory = Path(directory)
        meta = json.loads((directory / "model.json").read_text())
        if meta.get("name") != cls.name:
            raise ValueError(f"{directory} holds a {meta.get('name')!r} model, not {cls.name!r}")
        model = cls(**meta["params"])
        with np.load(directory / "arrays.npz", allow_pickle=False) as npz:
            state = _unpack(npz)
        model.users = [str(u) for u in state.pop("users")]
        model.items = [str(i) for i in state.pop("items")]
        model._set_state(state)
        return model


def _pack(state: dict[str, np.ndarray | sp.spmatrix]) -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if sp.issparse(value):
            csr = sp.csr_matrix(value)
            flat[f"{key}{_CSR}data"] = csr.data
            flat[f"{key}{_CSR}indices"] = csr.indices
            flat[f"{key}{_CSR}indptr"] = csr.indptr
            flat[f"{key}{_CSR}shape"] = np.asarray(csr.shape, dtype=np.int64)
        else:
            flat[key] = np.asarray(value)
    return flat


def _unpack(npz) -> dict[str, np.ndarray | sp.csr_matrix]:
    state: dict[str, Any] = {}
    for key in npz.files:
        if _CSR in key:
            name = key.split(_CSR)[0]
            if name not in state:
                state[name] = sp.csr_matrix(
                    (npz[f"{name}{_CSR}data"], npz[f"{name}{_CSR}indices"], npz[f"{name}{_CSR}indptr"]),
                    shape=tuple(npz[f"{name}{_CSR}shape"]),
                )
        else:
            state[key] = npz[key]
    return state


def dense_rank(*keys: np.ndarray) -> np.ndarray:
    """Return int64 ranks ordering rows by keys (first key most significant); equal key tuples share a rank.

    Ranks are 0..n_distinct-1, so they stay exact in float32 up to 2**24 distinct tuples.
    """
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(keys[::-1])
    stacked = np.stack([np.asarray(k)[order] for k in keys])
    new_value = np.any(stacked[:, 1:] != stacked[:, :-1], axis=0)
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.concatenate([[0], np.cumsum(new_value)])
    return ranks


def overlay_rows(base: np.ndarray, overlay: sp.csr_matrix, user_idx: np.ndarray) -> np.ndarray:
    """Return one copy of the (n_items,) base row per user, with that user's stored overlay entries written over it."""
    user_idx = np.atleast_1d(user_idx)
    scores = np.tile(base, (len(user_idx), 1))
    rows = overlay[user_idx].tocoo()
    scores[rows.row, rows.col] = rows.data
    return scores


def log_softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Return the float32 log-softmax of each row; -inf entries stay -inf, a row without a finite entry all -inf.

    Computed in float32 in one copy (the sums in float64): 3.3x faster than through float64 temporaries, and
    within one float32 step of it (bench/README "The exact top-K").
    """
    out = np.array(scores, dtype=np.float32, copy=True)
    unscored = ~np.isfinite(out)
    if unscored.any():
        out[unscored] = -np.inf
    top = out.max(axis=1, keepdims=True) if out.shape[1] else np.zeros((len(out), 1), np.float32)
    top[~np.isfinite(top)] = 0.0
    out -= top
    out -= np.log(np.maximum(np.exp(out).sum(axis=1, keepdims=True, dtype=np.float64), 1e-300)).astype(np.float32)
    return out


def user_rows(matrix: sp.csr_matrix, user_idx: np.ndarray) -> sp.csr_matrix:
    """Return the rows of matrix for user_idx, in that order."""
    return matrix[np.asarray(user_idx, dtype=np.int64)]


def strongest_history_item(history: sp.csr_matrix, weights, item_idx: np.ndarray) -> list[int | None]:
    """For each item i, the history item h maximising history[h] * weights[h, i]; None without positive support.

    history: (1, n_rows_of_weights) sparse row; weights: (n_rows, n_cols) sparse or dense; item_idx: columns.
    """
    item_idx = np.asarray(item_idx, dtype=np.int64)
    hist_items, hist_values = history.indices, history.data.astype(np.float64)
    if len(hist_items) == 0 or len(item_idx) == 0:
        return [None] * len(item_idx)
    block = weights[hist_items][:, item_idx]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    contrib = hist_values[:, None] * block
    best = contrib.argmax(axis=0)
    best_value = contrib[best, np.arange(len(item_idx))]
    return [int(hist_items[b]) if v > 0 else None for b, v in zip(best, best_value)]

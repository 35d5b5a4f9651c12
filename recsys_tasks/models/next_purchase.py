"""'What will this shopper buy in the next month': gradient-boosted trees learned on the shop's own past months.

The model rebuilds the shop as it was at a few past cut-offs (as_of minus the horizon, then a week earlier each),
labels each (user, candidate) pair with whether the user bought the item in the horizon after that cut-off, and
learns one HistGradientBoostingClassifier on all of them (every bought pair, `negative_share` of the others,
weighted back so the probabilities stay calibrated). Features (next_purchase_features.py) fuse the user's own
buying rhythm with the item (counts, decayed counts, cycle, days since last purchase), item-item evidence (EASE,
cosine), the item's sales trend, and the language model's text: the cosine between the item's (tuned) MiniLM
embedding and the user's purchases, and with what is rising this week. At as_of every candidate of every user is
scored once; items outside a user's candidates rank below them in recent-popularity order.

New items (cold start): an item nobody bought yet has only its text. At the newest cut-off the model also replays a
share of the sold items as if they were launched after it (their earlier sales hidden, their later ones the labels),
so the trees learn how a never-sold item is bought from its text likeness to the user and to what is rising. Items
never sold at all in the data are left out of the other cut-offs' rows: they would only teach "never bought".
Every user's candidates include the never-sold items closest to the user's text profile; where the catalogue dates
its items (`TrainingData.item_first_seen_days`), only those listed within `new_item_days` count as new (an item
listed long ago that nobody bought is dormant, and is not offered as new).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from recsys_tasks.models.base import Evidence, Recommender, TrainingData, dense_rank, overlay_rows
from recsys_tasks.models.next_purchase_features import FEATURES, SOURCES, Events, pair_rows
from recsys_tasks.models.sequences import sequence_ages

log = logging.getLogger(__name__)

MIN_POSITIVES = 20  # fewer bought pairs than this over all cut-offs: the trees are not fitted (fallback order)


class NextPurchaseGBDT(Recommender):
    """Learned ranker for restocking shops: repeat purchases and new items in one calibrated score."""

    name = "gbdt"
    scale_limits = ("gbdt: rows = users x (history + n_related + n_popular) per cut-off; item-item models on the "
                    "max_items most sold items (O(max_items^2) memory)")

    def __init__(self, horizon_days: float = 30.0, cutoffs: int = 8, cutoff_step_days: float = 7.0,
                 n_related: int = 100, n_popular: int = 50, ease_lambda: float = 500.0, max_items: int = 20_000,
                 max_iter: int = 300, learning_rate: float = 0.05, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 50, sources: str = ",".join(SOURCES), new_item_share: float = 0.2,
                 new_item_replays: int = 3, new_item_days: float | None = None, negative_share: float = 1.0,
                 seed: int = 0) -> None:
        super().__init__()
        self.horizon_days = horizon_days  # float: the model predicts purchases in the next N days (untimed: next event)
        self.cutoffs = cutoffs  # int: past cut-offs whose next N days (untimed: next event) are the training labels
        self.cutoff_step_days = cutoff_step_days  # float: days between those cut-offs
        self.n_related = n_related  # int: EASE candidates per user beyond the user's own items
        self.n_popular = n_popular  # int: best sellers of the last 30 days added to every user's candidates
        self.ease_lambda = ease_lambda  # float: L2 of the EASE feature
        self.max_items = max_items  # int: item-item features cover at most this many most sold items
        self.max_iter = max_iter  # int: boosting rounds
        self.learning_rate = learning_rate  # float: boosting shrinkage
        self.max_leaf_nodes = max_leaf_nodes  # int: leaves per tree
        self.min_samples_leaf = min_samples_leaf  # int: rows per leaf at least
        self.sources = sources  # str: comma-separated candidate sources beyond own items: ease, next, text
        unknown = set(sources.split(",")) - set(SOURCES)
        if unknown:
            raise ValueError(f"gbdt: unknown candidate sources {sorted(unknown)}; expected some of {SOURCES}")
        self.new_item_share = new_item_share  # float: share of sold items replayed as new at the newest cut-off
        self.new_item_replays = new_item_replays  # int: that replay drawn this many times, other items each time
        self.new_item_days = new_item_days  # float | None: a never-sold item is new when the catalogue first listed it
        # at most this many days ago (older ones are dormant: not candidates); None or no dates: every never-sold item
        if not 0.0 < negative_share <= 1.0:
            raise ValueError(f"gbdt: negative_share (setting gbdt_negative_share) must lie in (0, 1], "
                             f"not {negative_share!r}")
        self.negative_share = negative_share  # float: share of not-bought pairs the trees learn on (each weighted
        # 1 / share, so the probabilities stay calibrated); every bought pair is kept
        self.seed = seed  # int: seed of the trees' binning sample, the negatives kept and the items replayed as new
        self.candidate_score: sp.csr_matrix | None = None  # (n_users, n_items) probability + 1 on candidates
        self.popularity_score: np.ndarray | None = None  # (n_items,) float32 in [0, 1): everything else
        self.history: sp.csr_matrix | None = None  # (n_users, n_items) what each user bought (or did)
        self.new_items: np.ndarray | None = None  # (n_items,) bool: never sold and (when dated) listed lately
        self.item_text: np.ndarray | None = None  # (n_items, d) float16 unit text vectors, (0, 0) without text
        self.fit_report: dict = {}

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("horizon_days", "cutoffs", "cutoff_step_days", "n_related", "n_popular",
                                               "ease_lambda", "max_items", "max_iter", "learning_rate",
                                               "max_leaf_nodes", "min_samples_leaf", "sources", "new_item_share",
                                               "new_item_replays", "new_item_days", "negative_share", "seed")}

    def _rows(self, events: Events, shift: float, horizon: float | None, text, hidden=None, new_pool=None,
              offer_new: bool = True):
        sources = tuple(s for s in self.sources.split(",") if offer_new or s != "new")
        return pair_rows(events, shift, horizon, text, n_related=self.n_related, n_popular=self.n_popular,
                         ease_lambda=self.ease_lambda, max_items=self.max_items, sources=sources, hidden=hidden,
                         new_pool=new_pool)

    def _new_item_rows(self, events: Events, shift: float, horizon: float, text):
        """Rows of sold items replayed as launched after the cut-off: what the trees learn new items from."""
        sold = np.unique(events.items[events.ages > shift])
        n = int(round(self.new_item_share * len(sold)))
        if text is None or n == 0 or not {"text", "new"} & set(self.sources.split(",")):
            return None
        rng = np.random.default_rng(self.seed)
        negatives = np.random.default_rng([self.seed, 1])
        xs, ys = [], []
        for _ in range(self.new_item_replays):
            hidden = np.zeros(events.n_items, bool)
            hidden[rng.choice(sold, size=n, replace=False)] = True
            rows = self._rows(events, shift, horizon, text, hidden)  # the replayed items' rows only
            keep = self._sampled(rows.labels, negatives)
            xs.append(rows.features if keep is None else rows.features[keep])  # share 1.0: no copy
            ys.append(rows.labels if keep is None else rows.labels[keep])
        return np.vstack(xs), np.concatenate(ys)

    def _sampled(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """Return which training rows to keep: every bought pair, negative_share of the others (None: all)."""
        if self.negative_share >= 1.0:
            return None
        return labels | (rng.random(len(labels)) < self.negative_share)

    def _learn(self, x: np.ndarray, y: np.ndarray, serve: np.ndarray) -> np.ndarray | None:
        """Fit trees on (x, y) and return their purchase probabilities of the serving rows; None with too few
        bought (or too few not bought) pairs to learn from. Columns without any value become 0 in both arrays.
        Not-bought rows weigh 1 / negative_share: the rows were sampled so (_sampled)."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        if y.sum() < MIN_POSITIVES or (~y).sum() < MIN_POSITIVES:
            return None
        trees = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=1.0, random_state=self.seed)
        weight = np.where(y, 1.0, 1.0 / self.negative_share) if self.negative_share < 1.0 else None
        empty = np.isnan(x).all(axis=0)  # e.g. no text: sklearn cannot bin a column without values (set in place)
        x[:, empty] = 0.0
        serve[:, empty] = 0.0
        trees.fit(x, y, sample_weight=weight)
        return trees.predict_proba(serve)[:, 1] if len(serve) else np.zeros(0)

    def training_shifts(self, span_days: float, timed: bool = True) -> tuple[float, list[float]]:
        """Return the horizon used and the cut-offs (days before as_of) that leave history before them.

        A shop younger than two horizons learns on a horizon of a third of its history instead. Without time
        stamps the horizon is one step: each cut-off holds out one more of every user's newest events.
        """
        if not timed:
            return 1.0, [1.0 + k for k in range(self.cutoffs) if 1.0 + k < span_days]
        horizon = float(self.horizon_days)
        if span_days < 2 * horizon:
            horizon = max(1.0, span_days / 3)
        shifts = [horizon + k * self.cutoff_step_days for k in range(self.cutoffs)]
        return horizon, [s for s in shifts if s < span_days]

    def fit(self, data: TrainingData) -> "NextPurchaseGBDT":
        if data.user_sequences is None:
            raise ValueError("gbdt needs event sequences (TrainingData.user_sequences, with their ages when timed)")
        ages = sequence_ages(data)
        started = time.perf_counter()
        self._remember_ids(data)
        events = Events.from_sequences(data.user_sequences, ages, data.n_items)
        text = data.item_text_embedding
        if text is not None:
            text = np.asarray(text, dtype=np.float32)
            text = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-9)
        horizon, shifts = self.training_shifts(events.span_days(), timed=ages is not None)
        xs, ys = [], []
        ever_sold = np.bincount(events.items, minlength=events.n_items) > 0
        negatives = np.random.default_rng([self.seed, 0])
        for shift in shifts:
            # the warm trees learn without the "new" source: new items are the replay's own trees' work
            rows = self._rows(events, shift, horizon, text, offer_new=False)
            # an item never sold at all teaches nothing about new items' sales; negatives sampled cut-off by cut-off
            keep = ever_sold[rows.items]
            sampled = self._sampled(rows.labels, negatives)
            if sampled is not None:
                keep &= sampled
            xs.append(rows.features[keep])
            ys.append(rows.labels[keep])
        x = np.vstack(xs) if xs else np.zeros((0, len(FEATURES)), np.float32)
        y = np.concatenate(ys) if ys else np.zeros(0, bool)
        new_pool = ~ever_sold  # the items the "new" source may offer at as_of
        listed = data.item_first_seen_days
        if self.new_item_days is not None and listed is not None:
            new_pool &= ~(listed > self.new_item_days)  # listed long ago and never sold: dormant, not new
        serve = self._rows(events, 0.0, None, text, new_pool=new_pool)
        self.fit_report = {"timed": ages is not None, "horizon": horizon, "cutoffs_days_before": shifts,
                           "training_rows": int(len(y)), "training_positives": int(y.sum()),
                           "negative_share": self.negative_share,
                           "candidates": int(len(serve.users))}
        new = new_pool[serve.items]
        new_features = serve.features[new]  # before the warm trees zero their empty columns in serve.features
        probability = self._learn(x, y, serve.features)
        self.fit_report["fitted"] = probability is not None
        if probability is None:
            # too young a shop: the user's own decayed purchases, then the item-item evidence
            f = {name: serve.features[:, k] for k, name in enumerate(FEATURES)}
            probability = (np.nan_to_num(f["decayed_90d"]) + 1e-3 * np.nan_to_num(f["ease"], nan=-1e3)) / 1e3
            probability = (dense_rank(probability) + 1) / (len(probability) + 1)
            log.info("gbdt: %d positive pairs < %d, scores by decayed purchases instead", int(y.sum()), MIN_POSITIVES)
        replay = (self._new_item_rows(events, shifts[0], horizon, text)
                  if shifts and new.any() and self.fit_report["fitted"] else None)
        if replay is not None:
            # new items get their own trees, learned on the replay only: the warm trees stay as they were
            new_probability = self._learn(*replay, new_features)
            self.fit_report.update(new_item_rows=int(len(replay[1])), new_item_positives=int(replay[1].sum()),
                                   new_item_candidates=int(new.sum()), new_item_fitted=new_probability is not None)
            if new_probability is not None:
                probability[new] = new_probability
        self.candidate_score = sp.csr_matrix(
            (np.asarray(probability, np.float32) + 1.0, (serve.users, serve.items)), shape=(data.n_users, data.n_items))
        self.candidate_score.sum_duplicates()
        rank = dense_rank(np.asarray(data.recent_popularity, dtype=np.float64))
        self.popularity_score = (rank / (rank.max(initial=0) + 1)).astype(np.float32)
        self.history = data.purchases if data.purchases.nnz else data.interactions
        self.new_items = new_pool
        self.item_text = text.astype(np.float16) if text is not None else np.zeros((0, 0), np.float16)
        self.fit_report["fit_seconds"] = round(time.perf_counter() - started, 1)
        log.info("gbdt: %s", self.fit_report)
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return overlay_rows(self.popularity_score, self.candidate_score, user_idx)

    def log_scores(self, user_idx: np.ndarray) -> np.ndarray:
        """Return log purchase probabilities: the trees' own on candidates; every other item one nat below the
        user's least likely candidate, in popularity order, so another model in a blend can still lift it."""
        return purchase_log_probabilities(self.score(user_idx))

    def explain(self, user_idx: int, item_idx: np.ndarray) -> list[Evidence]:
        self._check_fitted()
        own = self.history[user_idx]
        out = []
        for item in np.atleast_1d(item_idx):
            count = float(own[0, item])
            if count > 0:
                out.append(Evidence("repeat", because_item=int(item), count=int(round(count))))
            elif self.new_items is not None and self.new_items[item] and self.item_text.size and own.nnz:
                likeness = self.item_text[own.indices].astype(np.float32) @ self.item_text[item].astype(np.float32)
                near = own.indices[np.argmax(likeness)]
                out.append(Evidence("new_item", because_item=int(near)))
            else:
                out.append(Evidence("popularity"))
        return out

    def _state(self) -> dict:
        return {"candidate_score": self.candidate_score, "popularity_score": self.popularity_score,
                "history": self.history, "new_items": self.new_items, "item_text": self.item_text}

    def _set_state(self, state: dict) -> None:
        self.candidate_score = state["candidate_score"]
        self.popularity_score = state["popularity_score"]
        self.history = state["history"]
        self.new_items = state.get("new_items")  # absent from artefacts written before new items were scored
        self.item_text = state.get("item_text", np.zeros((0, 0), np.float16))


def purchase_log_probabilities(scores: np.ndarray) -> np.ndarray:
    """Return NextPurchaseGBDT.log_scores from its scores (candidates: 1 + probability; others: popularity in [0, 1)).

    Candidates get log(probability); every other item floor - 1 - (1 - score), floor the user's least likely
    candidate (log 1e-9 without any). The logarithm is taken of the candidates only, in float64 as the order of the
    others needs.
    """
    rows, cols = np.nonzero(scores >= 1.0)  # row-major: each user's candidates together
    logp = np.log(np.clip(scores[rows, cols].astype(np.float64) - 1.0, 1e-9, None))
    floor = np.full(len(scores), np.log(1e-9))
    if len(rows):
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        floor[rows[starts]] = np.minimum.reduceat(logp, starts)
    out = np.asarray(scores, dtype=np.float64) + (floor - 2.0)[:, None]  # floor - 1 - (1 - score)
    out = out.astype(np.float32)
    out[rows, cols] = logp
    return out

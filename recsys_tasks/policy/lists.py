"""Build the users' lists of one arm: recall -> rules -> rank -> re-rank -> exploration -> fill -> explain."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recsys_tasks import reasons
from recsys_tasks.policy.candidates import recall
from recsys_tasks.policy.explain import Explainer
from recsys_tasks.policy.ranker import Ranker
from recsys_tasks.policy.rerank import exploration_slots, mmr
from recsys_tasks.policy.rules import RuleBook
from recsys_tasks.policy.signals import Moment
from recsys_tasks.policy.variants import Knobs
from recsys_tasks.runlog import Progress

EXPLORE_MIN_SIMILARITY = 0.5  # a new item needs this text cosine to one of the user's recent items to be explored
COLUMNS = {"user_id": pl.Utf8, "rank": pl.Int32, "item_id": pl.Utf8, "score": pl.Float64, "strategy": pl.Utf8,
           "reason": pl.Utf8}


@dataclass
class Arm:
    """What one arm serves: its model, the ranker learned for that model, its knobs."""

    model: object
    ranker: Ranker
    knobs: Knobs
    name: str = ""  # the A/B arm, for the progress line


@dataclass
class ListStats:
    """Counts of what went into the lists, for the stage's row counts."""

    counts: dict = field(default_factory=dict)

    def add(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + int(n)


def _ids(values: np.ndarray) -> np.ndarray:
    """Return int ids of string labels ("" -> -1)."""
    labels = {v: i for i, v in enumerate(sorted(set(values.tolist()) - {""}))}
    return np.asarray([labels.get(v, -1) for v in values.tolist()], dtype=np.int64)


def chunk_size(n_items: int) -> int:
    """Return users per chunk so ~11 dense feature rows per user stay within ~200 MB."""
    return int(max(8, min(512, 4_000_000 // max(n_items, 1))))


class ListBuilder:
    """Lists for known users, sharing one moment and one rule book across arms."""

    def __init__(self, moment: Moment, rules: RuleBook, new_item_days: int, k: int):
        self.moment, self.rules, self.k, self.new_item_days = moment, rules, k, new_item_days
        cat = moment.catalogue
        self.category = _ids(np.asarray(cat.top_category, dtype=object))
        self.brand = _ids(np.asarray(cat.brand, dtype=object))
        if len(set(self.category.tolist())) <= 1:
            self.category_weight_override = 0.0  # one category says nothing about diversity: text alone
        else:
            self.category_weight_override = None
        self.popular = np.lexsort((np.arange(moment.data.n_items), -moment.data.recent_popularity))
        self.new_items = np.flatnonzero(cat.is_new(new_item_days) & ~rules.blocked)
        self.stats = ListStats()

    def build(self, users: np.ndarray, arm: Arm) -> pl.DataFrame:
        """Return user_id, rank, item_id, score, strategy, reason for users (rows of moment.data)."""
        rows = {c: [] for c in COLUMNS}
        users = np.asarray(users, dtype=np.int64)
        users = users[~self.rules.no_list[users]]
        plain = self.rules.not_personalised[users]
        self._segment_lists(users[plain], rows)
        users = users[~plain]
        explainer = Explainer(self.moment, arm.model)
        step = chunk_size(self.moment.data.n_items)
        progress = Progress(f"users scored ({arm.name})" if arm.name else "users scored", len(users), "users")
        for start in range(0, len(users), step):
            self._chunk(users[start:start + step], arm, explainer, rows)
            progress.advance(len(users[start:start + step]))
        return pl.DataFrame(rows, schema=COLUMNS)

    def _chunk(self, users: np.ndarray, arm: Arm, explainer: Explainer, rows: dict) -> None:
        knobs, k = arm.knobs, self.k
        allowed = self.rules.allowed(users)
        if not knobs.policy:
            return self._bare(users, arm, allowed, explainer, rows)
        cand = recall(self.moment, arm.model, users, knobs.recall_per_source, self.new_item_days)
        for source, n in cand.source_hits.items():
            self.stats.add(f"recalled_{source}", n)
        usable = cand.recalled & allowed
        logits = arm.ranker.logits(cand.features)
        prob = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        prob = np.where(usable, prob, -np.inf)
        width = min(self.moment.data.n_items, max(2 * k, k + 20))  # MMR rarely reaches past 2k; cost grows as width^2
        pool = np.argsort(-prob, axis=1, kind="stable")[:, :width]
        relevance = np.take_along_axis(prob, pool, axis=1)
        cw = knobs.mmr_category_weight if self.category_weight_override is None else self.category_weight_override
        picked = mmr(relevance, pool, self.moment.catalogue.embeddings, self.category, self.brand, k,
                     knobs.mmr_lambda, cw, knobs.max_per_brand)
        slots = exploration_slots(k, knobs.exploration_share)
        for r, user in enumerate(users):
            chosen = [int(pool[r, p]) for p in picked[r] if p >= 0]
            scores = {i: float(prob[r, i]) for i in chosen}
            explored = self._explore(int(user), chosen, allowed[r] & self._under_cap(chosen, knobs.max_per_brand),
                                     slots, logits[r])
            for slot, item in explored:
                chosen.insert(slot, item)
            chosen = chosen[:k]
            self._fill(chosen, allowed[r], knobs.max_per_brand)
            explore_set = {i for _, i in explored}
            ranked = [i for i in chosen if i in scores and i not in explore_set]
            said = dict(zip(ranked, explainer.explain(cand, r, np.asarray(ranked, dtype=np.int64), arm.ranker)))
            for rank, item in enumerate(chosen, start=1):
                if item in explore_set:
                    e, score = explainer.explore(int(user), item), None
                    self.stats.add("explore_slots", 1)
                elif item in said:
                    e, score = said[item], scores[item]
                else:
                    e, score = None, None
                self._row(rows, int(user), rank, item, score, e.strategy if e else "popularity_fill",
                          e.reason if e else reasons.POPULAR)

    def _bare(self, users: np.ndarray, arm: Arm, allowed: np.ndarray, explainer: Explainer, rows: dict) -> None:
        """The bare served model: its own top-K of the allowed items, padded from popularity."""
        scores = np.array(arm.model.score(users), dtype=np.float32)
        scores = np.where(allowed & np.isfinite(scores), scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :self.k]
        for r, user in enumerate(users):
            chosen = [int(i) for i in order[r] if np.isfinite(scores[r, i])]
            model_items = list(chosen)
            self._fill(chosen, allowed[r], 0)
            evidence = dict(zip(model_items, arm.model.explain(int(user), np.asarray(model_items, np.int64))
                                if model_items else []))
            bought_row = self.moment.bought[int(user)]
            for rank, item in enumerate(chosen, start=1):
                e = evidence.get(item)
                self._row(rows, int(user), rank, item, float(scores[r, item]) if e else None,
                          e.strategy if e else "popularity_fill",
                          reasons.reason_text(e, self.moment.catalogue.titles, bought_row) if e else reasons.POPULAR)

    def _explore(self, user: int, chosen: list[int], allowed: np.ndarray, slots: list[int],
                 logits: np.ndarray) -> list[tuple[int, int]]:
        """Return (slot, new item) pairs: new items close in text to the user's recent items, best scored first."""
        if not slots or not len(self.new_items):
            return []
        recent = self.moment.recent[user].indices
        if not len(recent):
            return []
        emb = self.moment.catalogue.embeddings
        fresh = self.new_items[allowed[self.new_items] & ~np.isin(self.new_items, chosen)
                               & ~np.isin(self.new_items, recent)]
        if not len(fresh):
            return []
        closeness = (emb[fresh] @ emb[recent].T).max(axis=1)
        near = closeness >= EXPLORE_MIN_SIMILARITY  # the text neighbour link is what lets a new item in
        fresh, closeness = fresh[near], closeness[near]
        order = np.lexsort((-closeness, -logits[fresh]))
        return list(zip(slots, [int(fresh[o]) for o in order[:len(slots)]]))

    def _under_cap(self, chosen: list[int], max_per_brand: int) -> np.ndarray:
        """Return the items whose brand has room left in a list holding chosen."""
        if max_per_brand <= 0 or not chosen:
            return np.ones(len(self.brand), dtype=bool)
        counts = np.bincount(self.brand[chosen][self.brand[chosen] >= 0], minlength=max(int(self.brand.max()) + 1, 1))
        return (self.brand < 0) | (counts[np.maximum(self.brand, 0)] < max_per_brand)

    def _fill(self, chosen: list[int], allowed: np.ndarray, max_per_brand: int) -> None:
        """Pad chosen to k from popularity: within the brand cap first, then (a tiny catalogue) beyond it."""
        have = set(chosen)
        for capped in ((True, False) if max_per_brand > 0 else (False,)):
            for i in self.popular:
                if len(chosen) >= self.k:
                    return
                i = int(i)
                if i in have or not allowed[i]:
                    continue
                if capped and self.brand[i] >= 0 and sum(self.brand[c] == self.brand[i] for c in chosen) >= max_per_brand:
                    continue
                chosen.append(i)
                have.add(i)

    def _segment_lists(self, users: np.ndarray, rows: dict) -> None:
        """Lists for users who opted out of personalisation: their segment's popular items."""
        m = self.moment
        for user in users:
            seg_row = int(m.user_segment_row[user])
            allowed = self.rules.allowed(np.asarray([user]))[0]
            score = np.where(allowed, m.segment_scores[seg_row], -np.inf)
            order = [int(i) for i in np.argsort(-score, kind="stable")[:self.k] if score[i] > 0]
            said = len(order)
            self._fill(order, allowed, 0)
            for rank, item in enumerate(order, start=1):
                personal = rank <= said
                self._row(rows, int(user), rank, item, float(score[item]) if personal else None,
                          "segment_popularity" if personal else "popularity_fill",
                          reasons.segment_text(m.segments[seg_row]) if personal else reasons.POPULAR)

    def _row(self, rows: dict, user: int, rank: int, item: int, score, strategy: str, reason: str) -> None:
        rows["user_id"].append(self.moment.data.users[user])
        rows["rank"].append(rank)
        rows["item_id"].append(self.moment.data.items[item])
        rows["score"].append(score)
        rows["strategy"].append(strategy)
        rows["reason"].append(reason)

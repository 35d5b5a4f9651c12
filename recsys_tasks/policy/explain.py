"""Explain each recommendation from the evidence that put it there: the source that added most to its score.

Every sentence cites something real: a history item of the user (for neighbours), the user's own purchase cycle,
the item's own category (trending), the user's segment, or the served model's own evidence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys_tasks import reasons
from recsys_tasks.policy.candidates import Candidates
from recsys_tasks.policy.ranker import Ranker
from recsys_tasks.policy.signals import Moment


@dataclass
class Explained:
    """One item's strategy, sentence and the evidence it cites."""

    strategy: str
    reason: str
    cited_item: int | None = None  # a history item of the user
    cited_category: str | None = None  # the recommended item's own category


def strongest_recent(moment: Moment, user: int, items: np.ndarray, similarity) -> list[int | None]:
    """Return, per item, the user's recent item h maximising weight_h x similarity[h, item] (None without one)."""
    row = moment.recent[user]
    if row.nnz == 0 or len(items) == 0:
        return [None] * len(items)
    block = np.asarray(similarity[row.indices][:, items].todense()) * row.data[:, None]
    best = block.argmax(axis=0)
    return [int(row.indices[b]) if block[b, j] > 0 else None for j, b in enumerate(best)]


def _row(matrix, user: int) -> dict[int, float]:
    row = matrix[user]
    return dict(zip(row.indices.tolist(), row.data.tolist()))


class Explainer:
    """Turn a chunk's ranker contributions and the sources' evidence into reasons."""

    def __init__(self, moment: Moment, model):
        self.moment = moment
        self.model = model
        self.titles = moment.catalogue.titles

    def explain(self, cand: Candidates, row: int, items: np.ndarray, ranker: Ranker) -> list[Explained]:
        """Return an Explained per item of chunk row `row`: the strongest source that has evidence to cite."""
        user = int(cand.users[row])
        items = np.asarray(items, dtype=np.int64)
        parts = ranker.contributions(cand.features, row, items)
        groups = list(parts)
        share = np.vstack([np.asarray(parts[g], dtype=np.float64) * np.ones(len(items)) for g in groups])
        order = np.argsort(-share, axis=0, kind="stable")
        facts = {"bought": _row(self.moment.bought, user), "since": _row(self.moment.days_since_last, user),
                 "cycle": _row(self.moment.own_cycle, user),
                 "behaviour": strongest_recent(self.moment, user, items, self.moment.behaviour),
                 "text": strongest_recent(self.moment, user, items, self.moment.text)}
        out: list[Explained | None] = []
        needs_model = []
        for j, item in enumerate(items):
            found = None
            for g in order[:, j]:
                if share[g, j] <= 0:
                    break
                if groups[g] == "served" and cand.feature("served")[row, item] > 0:
                    needs_model.append(j)  # the served model's own evidence, asked for in one call below
                    found = "served"
                    break
                found = self._evidence(groups[g], cand, row, user, int(item), j, facts)
                if found is not None:
                    break
            out.append(found)
        if needs_model:
            evidence = self.model.explain(user, items[needs_model])
            for j, e in zip(needs_model, evidence):
                because = e.because_item if e.because_item is not None and e.because_item >= 0 else None
                if e.strategy == "repeat" and e.count:
                    because = None  # "buy it again" cites the item itself
                out[j] = Explained(e.strategy, reasons.reason_text(e, self.titles, self.moment.bought[user]), because)
        return [e if isinstance(e, Explained) else Explained("popularity", reasons.POPULAR) for e in out]

    def _evidence(self, group: str, cand: Candidates, row: int, user: int, item: int, j: int,
                  facts: dict) -> Explained | None:
        m, cat = self.moment, self.moment.catalogue
        if group == "buy_again" and item in facts["bought"]:
            since = int(facts["since"][item]) - 1
            return Explained("buy_again", reasons.buy_again_text(int(facts["bought"][item]),
                                                                 facts["cycle"].get(item), since))
        if group == "viewed" and cand.feature("interest")[row, item] > 0:
            return Explained("viewed", reasons.LOOKED_AT)
        h = facts["behaviour"][j]
        if group == "bought_with" and h is not None:
            return Explained("bought_with", reasons.bought_with_text(self.titles[h], h in facts["bought"]), h)
        h = facts["text"][j]
        if group == "similar_text" and h is not None:
            return Explained("similar_text", reasons.because_text(self.titles[h], h in facts["bought"]), h)
        if group == "trending" and cat.events_7d[item] > 0:
            category = str(cat.top_category[item])
            return Explained("trending", reasons.trending_text(category),
                             cited_category=category if category != "uncategorised" else None)
        if group == "segment_popularity" and cand.feature("segment_popularity")[row, item] > 0:
            return Explained("segment_popularity", reasons.segment_text(m.segments[m.user_segment_row[user]]))
        return None

    def explore(self, user: int, item: int) -> Explained:
        """Return the reason of an exploration slot: the user's recent item closest in text to the new item."""
        row = self.moment.recent[user]
        emb = self.moment.catalogue.embeddings
        if row.nnz == 0:
            return Explained("explore_new", reasons.POPULAR)
        h = int(row.indices[np.argmax(emb[row.indices] @ emb[item])])
        bought = self.moment.bought[user, h] > 0
        return Explained("explore_new", reasons.new_item_text(self.titles[h], bool(bought)), h)

"""The demo shop, simulated one day at a time with numpy (seeded, so every run is the same).

Sessions run view -> click -> add_to_cart -> purchase within one category; consumables are ordered again
weeks later; a few purchases are rated days later; new items and shoppers arrive over the days.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys_tasks.sources.demo_catalogue import (
    DEVICES, ITEM_KEYS, MEDIAN_PRICE, REORDER_DAYS, make_catalogue, make_shoppers, search_query,
)

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating")
# share of sessions starting in each UTC hour: quiet nights, a lunch bump, a busy evening
HOURS = np.array([1, 1, 1, 1, 1, 1, 2, 4, 6, 7, 7, 8, 10, 9, 7, 7, 7, 8, 10, 12, 13, 11, 7, 3], float)


@dataclass
class Visits:
    """One day's sessions and the item pages viewed in them."""

    user: np.ndarray  # per session: shopper index
    category: np.ndarray  # per session: the category browsed
    searched: np.ndarray  # per session: whether it began with a search
    session: np.ndarray  # per view, sorted: session index
    item: np.ndarray  # per view: item index
    fit: np.ndarray  # per view: how well the price suits the shopper, in (0, 1]
    reorder: np.ndarray  # per view: a planned re-order, which always goes through to purchase
    quantity: np.ndarray  # per view: units if it is carted


class DemoShop:
    """The demo shop; ask for its days in order, since re-orders and reviews carry over."""

    def __init__(self, seed: int, days: int, n_users: int, n_items: int):
        self.rng = np.random.default_rng(seed)
        self.catalogue = make_catalogue(self.rng, n_items, days)
        self.shoppers = make_shoppers(self.rng, n_users, days)
        self.reorders: dict[int, list[tuple]] = {}  # day -> (user, item, quantity) arrays
        self.reviews: dict[int, list[tuple]] = {}  # day -> (user, item, stars) arrays
        self.next_event = 0
        self.next_session = 0

    def prices(self, day: int) -> np.ndarray:
        """Return every item's price on `day`."""
        cat = self.catalogue
        return np.where(cat.price_change <= day, cat.new_price, cat.price)

    def items_on(self, day: int) -> list[dict]:
        """Return the items partition of `day`: items launched, repriced or retired that day."""
        cat, price = self.catalogue, self.prices(day)
        changed = np.flatnonzero((cat.launch == day) | (cat.price_change == day) | (cat.retire == day))
        rows = []
        for i in changed:
            row = cat.rows[i] | {"price": float(price[i]), "available": bool(cat.retire[i] > day)}
            rows.append({k: row[k] for k in ITEM_KEYS})
        return rows

    def events_on(self, day: int, date: datetime.date) -> pl.DataFrame:
        """Return `day`'s events in time order: contract columns, context as country/device/query."""
        rng = self.rng
        visits = self._visits(day, date)
        n = len(visits.item)
        # roughly a quarter of views are clicked, a fifth of clicks carted, half the carts bought
        clicked = visits.reorder | (rng.random(n) < 0.22 * (0.6 + visits.fit))
        carted = clicked & (visits.reorder | (rng.random(n) < 0.2 * (0.6 + visits.fit)))
        bought = carted & (visits.reorder | (rng.random(n) < 0.5))
        times = _clock(rng, visits.session, len(visits.user), clicked, carted, bought)
        self._plan(day, visits.user[visits.session[bought]], visits.item[bought], visits.quantity[bought])
        rows = pl.concat([self._steps(day, visits, (clicked, carted, bought), times), self._reviews_due(day)])
        return self._contract(rows.sort("second", "kind", "session_id", "item_id", nulls_last=True), date)

    def _visits(self, day: int, date: datetime.date) -> Visits:
        """Return the day's browsing sessions, each in one category, then the re-orders that fall due."""
        rng, cat, who = self.rng, self.catalogue, self.shoppers
        live = (cat.launch <= day) & (cat.retire > day)
        active = np.flatnonzero(who.join <= day)
        busy = 1.25 if date.weekday() >= 5 else 1.0
        user = np.repeat(active, rng.poisson(who.activity[active] * busy))
        stocked = np.bincount(cat.category[live], minlength=len(MEDIAN_PRICE)) > 0
        user = user if stocked.any() else user[:0]
        taste = who.taste[user] * stocked
        category = (taste.cumsum(1) < (1 - rng.random(len(user)))[:, None] * taste.sum(1, keepdims=True)).sum(1)
        session, item, fit = self._browse(day, user, category, live)
        r_user, r_item, r_qty = _due(self.reorders.pop(day, []))
        r_user, r_item, r_qty = (a[live[r_item]] for a in (r_user, r_item, r_qty))  # retired items cannot be re-ordered
        every = REORDER_DAYS[cat.category[np.concatenate([item, r_item])]]
        quantity = np.minimum(rng.geometric(np.where(every > 0, 0.55, 0.85)), 6)
        quantity[len(item):] = r_qty
        return Visits(
            user=np.concatenate([user, r_user]),
            category=np.concatenate([category, cat.category[r_item]]),
            searched=np.concatenate([rng.random(len(user)) < 0.35, np.zeros(len(r_user), bool)]),
            session=np.concatenate([session, len(user) + np.arange(len(r_user))]),
            item=np.concatenate([item, r_item]),
            fit=np.concatenate([fit, np.ones(len(r_user))]),
            reorder=np.concatenate([np.zeros(len(item), bool), np.ones(len(r_user), bool)]),
            quantity=quantity,
        )

    def _browse(self, day: int, user: np.ndarray, category: np.ndarray, live: np.ndarray):
        """Return (session, item, price fit) per view: popular, new and well-priced items get seen most."""
        rng, cat = self.rng, self.catalogue
        weight = cat.popularity * live * (1 + 2 * np.exp(-np.clip(day - cat.launch, 0, None) / 7))
        rel_price = np.log(self.prices(day) / MEDIAN_PRICE[cat.category])
        n_views = np.minimum(rng.geometric(0.27, len(user)), 20)
        parts = []
        for c in np.unique(category):
            rows = np.flatnonzero(category == c)
            items = np.flatnonzero((cat.category == c) & live)
            gap = rel_price[items][None, :] - self.shoppers.band[user[rows]][:, None]
            fit = np.exp(-0.5 * (gap / 0.5) ** 2)
            # each session draws from its own distribution: one searchsorted over the stacked CDFs
            cdf = np.cumsum(weight[items] * (0.05 + fit), axis=1)
            cdf /= cdf[:, -1:]
            local = np.repeat(np.arange(len(rows)), n_views[rows])
            stacked = (cdf + np.arange(len(rows))[:, None]).ravel()
            pos = np.searchsorted(stacked, local + rng.random(len(local))) - local * len(items)
            pos = np.clip(pos, 0, len(items) - 1)
            parts.append((rows[local], items[pos], fit[local, pos]))
        if not parts:
            return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
        session, item, fit = (np.concatenate(p) for p in zip(*parts))
        order = np.argsort(session, kind="stable")
        session, item, fit = session[order], item[order], fit[order]
        first = np.sort(np.unique(session * len(cat.category) + item, return_index=True)[1])  # no page twice
        return session[first], item[first], fit[first]

    def _plan(self, day: int, user: np.ndarray, item: np.ndarray, quantity: np.ndarray) -> None:
        """Schedule re-orders of consumables (about half) and the reviews one buyer in ten writes."""
        rng = self.rng
        every = REORDER_DAYS[self.catalogue.category[item]]
        again = (every > 0) & (rng.random(len(item)) < 0.5)
        when = day + np.maximum(3, np.round(rng.gamma(4.0, np.maximum(every, 1) / 4.0)).astype(int))
        _schedule(self.reorders, again, when, user, item, quantity)
        review = rng.random(len(item)) < 0.1
        when = day + 2 + rng.geometric(0.3, len(item))
        stars = rng.choice(5, len(item), p=[0.05, 0.06, 0.12, 0.3, 0.47]) + 1
        _schedule(self.reviews, review, when, user, item, stars)

    def _steps(self, day: int, visits: Visits, funnel: tuple, times: tuple) -> pl.DataFrame:
        """Return one row per funnel step taken, with its session's context."""
        rng, who = self.rng, self.shoppers
        n_sessions = len(visits.user)
        device = np.where(rng.random(n_sessions) < 0.85, who.device[visits.user], rng.choice(DEVICES[0], n_sessions))
        query = np.full(n_sessions, None, dtype=object)
        query[visits.searched] = [search_query(rng, int(c)) for c in visits.category[visits.searched]]
        ids = np.array([f"s{self.next_session + i:08d}" for i in range(n_sessions)], dtype=object)
        self.next_session += n_sessions
        taken = (np.ones(len(visits.item), bool), *funnel)
        view = np.concatenate([np.flatnonzero(m) for m in taken])
        kind = np.concatenate([np.full(m.sum(), k) for k, m in enumerate(taken)])
        session = visits.session[view]
        price = self.prices(day)[visits.item[view]]
        return pl.DataFrame({
            "session_id": pl.Series(ids[session].tolist(), dtype=pl.Utf8),
            "user_id": visits.user[session], "item_id": visits.item[view], "kind": kind,
            "second": np.concatenate([t[m] for t, m in zip(times, taken)]),
            "quantity": np.where(kind >= 2, visits.quantity[view], 0),
            "price": np.where(kind >= 2, price, np.nan), "rating": np.full(len(view), np.nan),
            "country": who.country[visits.user[session]], "device": device[session],
            "query": pl.Series(query[session].tolist(), dtype=pl.Utf8),
        })

    def _reviews_due(self, day: int) -> pl.DataFrame:
        """Return the day's ratings, written at home: no session, the shopper's usual device."""
        user, item, stars = _due(self.reviews.pop(day, []))
        who, n = self.shoppers, len(user)
        return pl.DataFrame({
            "session_id": pl.Series([None] * n, dtype=pl.Utf8), "user_id": user, "item_id": item,
            "kind": np.full(n, 4), "second": self.rng.integers(1, 86399, n), "quantity": np.zeros(n, int),
            "price": np.full(n, np.nan), "rating": stars.astype(float),
            "country": who.country[user], "device": who.device[user], "query": pl.Series([None] * n, dtype=pl.Utf8),
        })

    def _contract(self, frame: pl.DataFrame, date: datetime.date) -> pl.DataFrame:
        """Return simulated rows with the shop's ids, event type names and UTC ISO 8601 times."""
        seconds = frame["second"].to_numpy().astype("timedelta64[s]")
        stamps = np.char.add(np.datetime_as_string(np.datetime64(date, "s") + seconds, unit="s"), "Z")
        ids = [f"e{self.next_event + i:09d}" for i in range(frame.height)]
        self.next_event += frame.height
        return frame.select(
            event_id=pl.Series(ids, dtype=pl.Utf8),
            session_id="session_id",
            user_id=pl.format("U{}", (pl.col("user_id") + 1).cast(pl.Utf8).str.zfill(6)),
            item_id=pl.format("P{}", (pl.col("item_id") + 1).cast(pl.Utf8).str.zfill(5)),
            event_type=pl.col("kind").replace_strict(dict(enumerate(EVENT_TYPES)), return_dtype=pl.Utf8),
            event_ts=pl.Series(stamps.tolist(), dtype=pl.Utf8),
            quantity=pl.when(pl.col("quantity") != 0).then(pl.col("quantity")).cast(pl.Int64),
            price=pl.col("price").fill_nan(None),
            rating=pl.col("rating").fill_nan(None),
            country="country", device="device", query="query",
        )


def _schedule(plan: dict[int, list[tuple]], chosen, when, *columns) -> None:
    """Add the chosen rows of `columns` to `plan` under the day each falls due."""
    for day in np.unique(when[chosen]):
        rows = chosen & (when == day)
        plan.setdefault(int(day), []).append(tuple(c[rows] for c in columns))


def _due(planned: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the (user, item, value) arrays planned for a day, empty when nothing is due."""
    if not planned:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    return tuple(np.concatenate(part) for part in zip(*planned))


def _clock(rng, session, n_sessions, clicked, carted, bought):
    """Return the second of the day of each view, click, cart and purchase; sessions fit inside the day."""
    n = len(session)
    click_gap, cart_gap = 2 + rng.exponential(8, n), 3 + rng.exponential(25, n)
    dwell = clicked * click_gap + carted * cart_gap
    step = 4 + rng.exponential(35, n) + dwell
    done = np.cumsum(step)
    before = np.zeros(n_sessions)  # time spent in earlier sessions of the running sum
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]]) if n else np.zeros(0, int)
    before[session[starts]] = (done - step)[starts]
    t_view = done - dwell - before[session]
    t_click = t_view + click_gap
    t_cart = t_click + cart_gap
    # purchases happen together at checkout, after the session's last page
    last = np.zeros(n_sessions)
    np.maximum.at(last, session, done - before[session])
    checkout = last + 20 + rng.exponential(60, n_sessions)
    bought_before = np.cumsum(bought) - bought
    rank = np.cumsum(bought) - np.repeat(bought_before[starts], np.diff(np.r_[starts, n]))
    t_buy = checkout[session] + 2 * rank
    span = np.maximum(last, checkout + 2 * np.bincount(session, bought, n_sessions)) + 2
    hour = rng.choice(24, n_sessions, p=HOURS / HOURS.sum())
    start = np.clip(hour * 3600 + rng.uniform(0, 3600, n_sessions), 1, 86398 - span)
    return tuple(np.floor(start[session] + t).astype(int) for t in (t_view, t_click, t_cart, t_buy))

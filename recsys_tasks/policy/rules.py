"""Business rules, kept as data in the policy.* tables, turned into an allowed-items mask per user.

An item is left out when it is unavailable, on the block list (item, brand or category, within its dates), bought
recently by the user while its category is not a re-purchase one, above the user's verified age, not sold in the
user's country, or in a category or brand the user opted out of. Users who opted out of everything get no list;
those who opted out of personalisation get their segment's list.

    python -m recsys_tasks.policy.rules load block_list rules.csv   # replace a rule table with a CSV's rows
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_tasks.config import Settings, load_settings
from recsys_tasks.policy.signals import Catalogue, Moment
from recsys_tasks.warehouse import fetch_frame, registered, sql, work_db

RULE_TABLES = ("block_list", "repurchase_categories", "user_opt_outs", "age_verified_users")


@dataclass
class RuleBook:
    """The rules in force on one day, indexed like the moment's users and items."""

    blocked: np.ndarray  # (n_items,) bool: unavailable or on the block list
    no_rebuy: sp.csr_matrix  # (n_users, n_items) bought recently in a category that is not re-purchased
    min_age: np.ndarray  # (n_items,) int
    user_age: np.ndarray  # (n_users,) int: verified age (0 = unknown)
    country_block: np.ndarray  # (n_segments, n_items) bool: not sold in that segment's country
    user_segment_row: np.ndarray  # (n_users,) row of country_block
    country_limited: np.ndarray  # (n_items,) bool: sold in some countries only
    opted_out_items: sp.csr_matrix  # (n_users, n_items) categories and brands the user opted out of
    no_list: np.ndarray  # (n_users,) bool: opted out of recommendations
    not_personalised: np.ndarray  # (n_users,) bool: opted out of personalisation
    history: sp.csr_matrix | None = None  # (n_users, n_items) left out for shops whose users never repeat

    def allowed(self, users: np.ndarray) -> np.ndarray:
        """Return the (B, n_items) mask of items the rules allow for each of users."""
        users = np.asarray(users, dtype=np.int64)
        ok = np.tile(~self.blocked, (len(users), 1))
        ok &= ~(self.min_age[None, :] > self.user_age[users][:, None])
        ok &= ~self.country_block[self.user_segment_row[users]]
        for mask in (self.no_rebuy, self.opted_out_items, self.history):
            if mask is not None:
                rows, cols = mask[users].nonzero()
                ok[rows, cols] = False
        return ok

    def allowed_for_segment(self, segment_row: int | None) -> np.ndarray:
        """Return the items an unknown user of a segment may see (no verified age; None = any country)."""
        ok = ~self.blocked & (self.min_age <= 0)
        return ok & ~(self.country_limited if segment_row is None else self.country_block[segment_row])


def repurchase_categories(manual: pl.DataFrame, observed: pl.DataFrame, min_share: float) -> dict[str, bool]:
    """Return top category -> re-purchased: a row of policy.repurchase_categories wins, else the observed share."""
    out = {c: s >= min_share for c, s in zip(observed["top_category"], observed["repurchase_share"])}
    out.update({c: bool(r) for c, r in zip(manual["category"], manual["repurchase"]) if c is not None and r is not None})
    return out


def country_mask(catalogue: Catalogue, segments: list[str]) -> np.ndarray:
    """Return (n_segments, n_items): the item's attributes do not let it be sold in the segment's country."""
    out = np.zeros((len(segments), len(catalogue.titles)), dtype=bool)
    for j, (allowed, blocked) in enumerate(zip(catalogue.countries, catalogue.blocked_countries)):
        if allowed is None and not blocked:
            continue
        for r, country in enumerate(segments):
            out[r, j] = (allowed is not None and country not in allowed) or country in blocked
    return out


def build_rulebook(moment: Moment, blocked_items: set[str], repurchase: dict[str, bool], no_rebuy_days: int,
                   verified_ages: dict[str, int], opt_outs: pl.DataFrame,
                   history: sp.csr_matrix | None = None) -> RuleBook:
    """Return the rules of a moment from the rule rows in force (see load_rulebook)."""
    data, cat = moment.data, moment.catalogue
    blocked = ~cat.available | np.asarray([i in blocked_items for i in data.items], dtype=bool)
    # an item bought within no_rebuy_days whose category is not re-purchased is left out
    keeps = np.asarray([repurchase.get(c, True) for c in cat.top_category], dtype=bool)
    since = moment.days_since_last.tocoo()  # stored +1: 1 = bought on the last day
    recent = (since.data - 1 <= no_rebuy_days) & ~keeps[since.col]
    no_rebuy = sp.csr_matrix((np.ones(int(recent.sum()), np.float32), (since.row[recent], since.col[recent])),
                             shape=since.shape)
    users = {u: i for i, u in enumerate(data.users)}
    user_age = np.zeros(data.n_users, dtype=np.int64)
    for user, age in verified_ages.items():
        if user in users and age is not None:
            user_age[users[user]] = age
    no_list = np.zeros(data.n_users, dtype=bool)
    not_personalised = np.zeros(data.n_users, dtype=bool)
    rows, cols = [], []
    for user, scope, value in opt_outs.select("user_id", "scope", "value").iter_rows():
        if user not in users:
            continue
        u = users[user]
        if scope == "all":
            no_list[u] = True
        elif scope == "personalisation":
            not_personalised[u] = True
        elif scope in ("category", "brand") and value:
            field = cat.top_category if scope == "category" else cat.brand
            hits = np.flatnonzero(np.asarray([str(f).lower() == value.lower() for f in field]))
            rows += [u] * len(hits)
            cols += hits.tolist()
    opted = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(data.n_users, data.n_items))
    return RuleBook(blocked=blocked, no_rebuy=no_rebuy, min_age=cat.min_age, user_age=user_age,
                    country_block=country_mask(cat, moment.segments), user_segment_row=moment.user_segment_row,
                    country_limited=np.asarray([a is not None or bool(b) for a, b in
                                                zip(cat.countries, cat.blocked_countries)], dtype=bool),
                    opted_out_items=opted, no_list=no_list, not_personalised=not_personalised, history=history)


def load_rulebook(con, settings: Settings, moment: Moment, ds: date,
                  history: sp.csr_matrix | None = None) -> tuple[RuleBook, dict]:
    """Return the rules in force on ds from the policy.* tables and the data, and counts of what they cover."""
    blocks = fetch_frame(con, sql("policy/active_blocks"), {"ds": ds})
    manual = fetch_frame(con, "SELECT category, repurchase FROM policy.repurchase_categories")
    observed = fetch_frame(con, sql("policy/repurchase_share"), {"until": moment.until})
    repurchase = repurchase_categories(manual, observed, settings.repurchase_min_share)
    ages = fetch_frame(con, sql("policy/verified_ages"), {"ds": ds, "restricted_min_age": settings.restricted_min_age})
    opt_outs = fetch_frame(con, sql("policy/active_opt_outs"), {"ds": ds})
    book = build_rulebook(moment, set(blocks["item_id"].to_list()), repurchase, settings.no_rebuy_days,
                          dict(zip(ages["user_id"], ages["age_at_least"])), opt_outs, history)
    counts = {"rule_blocked_items": int(book.blocked.sum()), "rule_no_rebuy_pairs": int(book.no_rebuy.nnz),
              "rule_restricted_items": int((book.min_age > 0).sum()),
              "rule_country_limited_items": int(book.country_limited.sum()),
              "rule_opted_out_users": int(book.no_list.sum() + book.not_personalised.sum()),
              "rule_repurchase_categories": sum(repurchase.values())}
    return book, counts


def load_table(settings: Settings, table: str, csv_path: str) -> int:
    """Replace the rows of policy.<table> with a CSV's (columns by name); return the new row count."""
    if table not in RULE_TABLES:
        raise ValueError(f"unknown rule table {table!r}; expected one of {', '.join(RULE_TABLES)}")
    frame = pl.read_csv(csv_path, infer_schema=False)
    with work_db(settings) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"DELETE FROM policy.{table}")
        with registered(con, "rule_rows", frame):
            con.execute(f"INSERT INTO policy.{table} BY NAME SELECT * FROM rule_rows")
        con.execute("COMMIT")
        return int(con.execute(f"SELECT count(*) FROM policy.{table}").fetchall()[0][0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsys_tasks.policy.rules", description="Fill the policy's rule tables.")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="replace policy.<table> with the rows of a CSV (header = column names)")
    load.add_argument("table", choices=RULE_TABLES)
    load.add_argument("csv")
    args = parser.parse_args(argv)
    rows = load_table(load_settings({}), args.table, args.csv)
    print(f"policy.{args.table}: {rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())

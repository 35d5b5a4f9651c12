"""The short report `make run` prints: rows per table, the served model and its metrics, one user's list."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from recsys_tasks.warehouse import connect


def summary(analytics_db: Path, ds: date, user_id: str | None = None) -> str:
    """Return a plain-text summary of day ds in the analysts' database."""
    con = connect(analytics_db, read_only=True)
    try:
        lines = [f"Published {analytics_db} for ds={ds}", "", "Rows written:"]
        for table, where in (("recs.user_topk", "ds = $ds"), ("recs.default_topk", "ds = $ds"),
                             ("recs.item_similar", "ds = $ds"), ("features.user_profile", "ds = $ds"),
                             ("features.item_knowledge", "ds = $ds"), ("metrics.offline_eval", "ds = $ds"),
                             ("quality.quarantine", "dt <= $ds"), ("quality.validation_runs", "ds = $ds")):
            n = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", {"ds": ds}).fetchone()[0]
            lines.append(f"  {table:<26} {n:>9,}")
        lines += ["", "Models on the holdout (all track / new track):"]
        rows = con.execute(
            "SELECT model, any_value(served), "
            "max(value) FILTER (WHERE track = 'all' AND metric = 'ndcg'), "
            "max(value) FILTER (WHERE track = 'all' AND metric = 'recall'), "
            "max(value) FILTER (WHERE track = 'new' AND metric = 'ndcg'), "
            "max(value) FILTER (WHERE track = 'new' AND metric = 'recall'), any_value(k), any_value(n_users) "
            "FROM metrics.offline_eval WHERE ds = ? GROUP BY model ORDER BY model", [ds]).fetchall()
        for model, served, ndcg, recall, new_ndcg, new_recall, k, n in rows:
            mark = "  <- served" if served else ""
            lines.append(f"  {model:<18} NDCG@{k} {ndcg or 0:.4f}  Recall@{k} {recall or 0:.4f}   |  "
                         f"new NDCG@{k} {new_ndcg or 0:.4f}  Recall@{k} {new_recall or 0:.4f}  ({n} users){mark}")
        if user_id is None:
            # show a user whose list the model personalised, not one it filled from popularity
            found = con.execute("SELECT user_id FROM recs.user_topk WHERE ds = ? GROUP BY user_id "
                                "ORDER BY count(*) FILTER (WHERE strategy NOT LIKE '%popularity%') DESC, "
                                "count(DISTINCT strategy) DESC, user_id LIMIT 1", [ds]).fetchall()
            found = found[0] if found else None
            user_id = found[0] if found else None
        if user_id is not None:
            lines += ["", f"Top 10 for user {user_id}:"]
            for rank, item, title, reason in con.execute(
                    "SELECT r.rank, r.item_id, k.title, r.reason FROM recs.user_topk AS r "
                    "LEFT JOIN features.item_knowledge AS k USING (item_id) "
                    "WHERE r.ds = ? AND r.user_id = ? ORDER BY r.rank LIMIT 10", [ds, user_id]).fetchall():
                lines.append(f"  {rank:>2}. {str(title or item)[:48]:<48}  {reason}")
        lines += ["", "Query it (read-only, also while a run is publishing):",
                  f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{analytics_db}', read_only=True)"
                  f".sql('SELECT * FROM recs.latest_user_topk LIMIT 20'))\""]
        return "\n".join(lines)
    finally:
        con.close()

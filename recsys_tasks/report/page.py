"""HTML sections shared by the nightly report file and the "Recommendations" page in the Airflow UI."""
from __future__ import annotations

from datetime import date
from html import escape

import polars as pl

from recsys_tasks.report import data, svg

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2a33;background:#f6f7f9}
main{max-width:1360px;margin:0 auto;padding:16px 24px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:0 0 8px}
section{background:#fff;border:1px solid #dde2e7;border-radius:8px;padding:14px 16px;margin:14px 0}
.grid2{display:flex;flex-wrap:wrap;gap:12px}.chart{margin:0}
svg text{font-size:11px;fill:#44515c}svg .title{font-size:13px;font-weight:600;fill:#1f2a33}
svg .label{font-size:11px;fill:#66737d}svg .legend{font-size:11px}svg .grid{stroke:#e8ebee}
svg .axis{stroke:#9aa5ad}svg .reference{stroke:#9aa5ad;stroke-dasharray:4 4}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{padding:4px 8px;border-bottom:1px solid #eceff2;
text-align:left;vertical-align:top}th{background:#f1f3f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1d7a3e;font-weight:600}.bad{color:#b3261e;font-weight:600}.muted{color:#66737d}
.empty{color:#66737d;font-style:italic}.figures span{display:inline-block;margin-right:18px}
nav a{margin-right:12px}form input{padding:4px 6px}
"""


def table(frame: pl.DataFrame, columns: list[str] | None = None, limit: int = 50) -> str:
    """Return an HTML table of a frame's first rows."""
    if frame.is_empty():
        return svg.empty("no rows")
    columns = columns or frame.columns
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = []
    for row in frame.select(columns).head(limit).iter_rows():
        cells = []
        for value in row:
            if isinstance(value, bool):
                cells.append(f'<td class="{"ok" if value else "bad"}">{"pass" if value else "fail"}</td>')
            elif isinstance(value, float):
                cells.append(f'<td class="num">{value:.4g}</td>')
            elif isinstance(value, int):
                cells.append(f'<td class="num">{value:,}</td>')
            elif isinstance(value, list):
                cells.append(f"<td>{escape('; '.join(map(str, value[:3])))}</td>")
            else:
                cells.append(f"<td>{escape('' if value is None else str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def section(anchor: str, title: str, body: str) -> str:
    """Return one titled section."""
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def run_status(con, ds: date) -> str:
    """Return the latest runs with status, duration and served model."""
    runs = data.query(con, "pipeline_runs", ds=ds)
    if runs.is_empty():
        return section("runs", "Latest runs", svg.empty("no run recorded yet"))
    last = runs.row(0, named=True)
    css = "ok" if last["status"] == "success" else "bad"
    headline = (f'<p>Latest run: <b>{escape(str(last["ds"]))}</b> <span class="{css}" id="latest-status">'
                f'{escape(last["status"])}</span> in {last["seconds"] or 0:,} s, served model '
                f'<b>{escape(str(last["model"] or "-"))}</b>, run <span class="muted">{escape(last["run_id"])}</span></p>')
    return section("runs", "Latest runs", headline + table(
        runs, ["ds", "status", "seconds", "model", "run_id", "finished_at", "message"]))


def quality(con, ds: date) -> str:
    """Return the holdout metrics of every candidate and of the served model over time."""
    frame = data.query(con, "offline_eval_trend", ds=ds)
    k = frame["k"].max() if not frame.is_empty() else ""
    charts = [
        svg.line_chart(data.metric_series(frame, "ndcg", "all"), f"NDCG@{k}, all track, per candidate", "NDCG"),
        svg.line_chart(data.metric_series(frame, "ndcg", "new"), f"NDCG@{k}, new-items track, per candidate", "NDCG"),
        svg.line_chart({**{f"recall {t}": v["served"] for t in ("all", "new")
                           for v in [data.metric_series(frame, "recall", t, served_only=True)] if "served" in v},
                        **{f"ndcg {t}": v["served"] for t in ("all", "new")
                           for v in [data.metric_series(frame, "ndcg", t, served_only=True)] if "served" in v}},
                       f"Served model on the holdout (@{k})", "value"),
    ]
    return section("quality", "Quality: offline metrics over time", f'<div class="grid2">{"".join(charts)}</div>')


def feedback(con, ds: date) -> str:
    """Return the online feedback metrics (how earlier lists did against what users did since)."""
    if not data.has_table(con, data.FEEDBACK_TABLE):
        body = svg.empty(f"{data.FEEDBACK_TABLE} is not published yet: feedback appears once earlier lists can be "
                         "scored against what users did since.")
    else:
        series = data.trend_table(con, data.FEEDBACK_TABLE, ds)
        body = svg.line_chart(series, "Feedback on earlier lists (overall)", "value")
    return section("feedback", "Feedback: did earlier lists work?", body)


def list_health(con, ds: date) -> str:
    """Return the health of the lists: users served, items shown, exposure concentration, popularity share."""
    health = data.query(con, "list_health", ds=ds)
    rows = list(health.iter_rows(named=True))
    charts = [
        svg.line_chart({"users with a list": [(r["ds"], r["users"]) for r in rows],
                        "distinct items shown": [(r["ds"], r["items_shown"]) for r in rows]},
                       "Users served and items shown", "count"),
        svg.line_chart({"exposure Gini": [(r["ds"], r["gini"]) for r in rows],
                        "popularity-filled share": [(r["ds"], r["popularity_share"]) for r in rows]},
                       "Concentration of exposure", "share", y_max=1.0),
    ]
    if data.has_table(con, data.LIST_HEALTH_TABLE):
        charts.append(svg.line_chart(data.trend_table(con, data.LIST_HEALTH_TABLE, ds),
                                     f"{data.LIST_HEALTH_TABLE} (overall)", "value"))
    today = health.filter(pl.col("ds") == ds)
    return section("health", "List health", f'<div class="grid2">{"".join(charts)}</div>' + table(today))


def coverage(con, ds: date) -> str:
    """Return the popularity-vs-coverage curve of day ds's lists."""
    points, figures = data.coverage_curve(data.query(con, "popularity_coverage", ds=ds))
    if not points:
        return section("coverage", "Popularity vs coverage", svg.empty("no lists published for this day"))
    chart = svg.line_chart({"share of list slots": points}, "Popularity vs coverage",
                           "share of list slots", "share of catalogue, most popular first", y_max=1.0, diagonal=True)
    text = (f'<p class="figures"><span>catalogue items: <b>{figures["catalogue_items"]:,}</b></span>'
            f'<span>items shown: <b>{figures["items_shown"]:,}</b></span>'
            f'<span>coverage of available items: <b>{figures["coverage_of_available"]:.1%}</b></span>'
            f'<span>slots on the top 10% most popular: <b>{figures["slots_on_top_10pct"]:.1%}</b></span></p>'
            '<p class="muted">The dashed diagonal is equal exposure; the further the curve bows above it, the more '
            "the lists concentrate on popular items.</p>")
    return section("coverage", "Popularity vs coverage", chart + text)


def scores(con, ds: date) -> str:
    """Return the score distributions of day ds's lists by strategy."""
    chart = svg.histogram(data.score_groups(con, ds), f"Scores on {ds}, by strategy", "score")
    return section("scores", "Score distributions", chart)


def validation(con, ds: date, docs_href: str | None) -> str:
    """Return the newest validation's rule outcomes, failures per rule, and the trend."""
    rules = data.query(con, "validation_outcomes", ds=ds)
    trend = data.query(con, "validation_trend", ds=ds)
    link = (f'<p><a href="{escape(docs_href)}" id="data-docs-link" target="_blank" rel="noopener">'
            "Great Expectations data docs</a> (suites, expectations and observed values of this validation)</p>"
            if docs_href else "")
    if rules.is_empty():
        return section("validation", "Validation results", link + svg.empty("no validation recorded on or before this day"))
    first = rules.row(0, named=True)
    failed_rules = int((~rules["success"]).sum())
    css = "ok" if failed_rules == 0 else "bad"
    head = (f'<p>Validation of run <span class="muted">{escape(first["run_id"])}</span> ({escape(str(first["ds"]))}): '
            f'<span class="{css}">{len(rules) - failed_rules} of {len(rules)} rules passed</span>; '
            f'partitions {escape(", ".join(first["partitions"][:3]))}{" …" if len(first["partitions"]) > 3 else ""}</p>')
    bars = [(f'{r["suite"]}: {r["rule"]}', r["failed"]) for r in rules.iter_rows(named=True) if r["failed"]]
    charts = [
        svg.bar_chart(bars, "Rows failing each rule", "rows", color=svg.PALETTE[3]) if bars
        else svg.empty("no row failed any rule"),
        svg.line_chart({"failed checks": [(r["ds"], r["failed_checks"]) for r in trend.iter_rows(named=True)],
                        "rules failed": [(r["ds"], r["rules_failed"]) for r in trend.iter_rows(named=True)]},
                       "Validation outcomes over time", "count"),
    ]
    return section("validation", "Validation results", link + head + f'<div class="grid2">{"".join(charts)}</div>'
                   + table(rules, ["suite", "rule", "column", "checked", "failed", "success", "examples"]))


def quarantine(con, ds: date) -> str:
    """Return quarantined rows by rule."""
    frame = data.query(con, "quarantine_by_rule", ds=ds)
    if frame.is_empty():
        return section("quarantine", "Quarantine by rule", svg.empty("nothing quarantined"))
    bars = [(f'{r["kind"]}: {r["rule"]}', r["quarantined"]) for r in frame.iter_rows(named=True)]
    return section("quarantine", "Quarantine by rule", svg.bar_chart(bars, "Quarantined rows by rule", "rows",
                                                                      color=svg.PALETTE[1]) + table(frame))


def user_lookup(frame: pl.DataFrame, user_id: str, ds: date) -> str:
    """Return one user's list with titles and reasons."""
    if frame.is_empty():
        return svg.empty(f"user {user_id} has no list on {ds}")
    return (f"<p>List of <b>{escape(user_id)}</b> on {ds}:</p>"
            + table(frame, ["rank", "title", "item_id", "category", "score", "strategy", "reason"]))


def document(title: str, body: str, subtitle: str = "") -> str:
    """Return a complete HTML page (no external resources)."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body><main><h1>{escape(title)}</h1><p class="muted">{escape(subtitle)}</p>{body}</main></body></html>')

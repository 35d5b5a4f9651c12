"""Report stage: $RECSYS_HOME/reports/<ds>/index.html (charts inline, no network) and GE data docs beside it."""
from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path
from urllib.parse import quote

from recsys_tasks.config import Settings
from recsys_tasks.report import data, data_docs, page

log = logging.getLogger(__name__)


def render(con, ds: date, docs: dict[str, str] | None = None, docs_prefix: str = "data_docs/") -> str:
    """Return the report of day ds as one HTML page."""
    docs = docs or {}
    first = next(iter(docs.values()), None)
    links = "".join(f'<a href="{docs_prefix}{quote(p)}">{name}</a> ' for name, p in docs.items())
    body = [
        page.run_status(con, ds),
        page.quality(con, ds),
        page.feedback(con, ds),
        page.list_health(con, ds),
        page.coverage(con, ds),
        page.scores(con, ds),
        page.validation(con, ds, docs_prefix + quote(first) if first else None),
        page.section("data-docs", "Great Expectations data docs",
                     f"<p>Validation pages per suite: {links}</p>" if links
                     else '<p class="empty">no validation recorded for this day</p>'),
        page.quarantine(con, ds),
    ]
    return page.document(f"recsys nightly report {ds}", "".join(body),
                         "Read from the analysts' database after publish; charts are inline SVG.")


def write_report(settings: Settings, ds: date, run_id: str) -> dict:
    """Write the day's HTML report and GE data docs under reports/<ds>/; return what was written."""
    folder = settings.reports_dir / ds.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    with data.analytics(settings.analytics_db) as con:
        rules = data.query(con, "validation_outcomes", ds=ds)
        docs = data_docs.build(settings, rules, folder / "data_docs")
        html = render(con, ds, docs)
    tmp = folder / f".index.html.{os.getpid()}"
    tmp.write_text(html)
    os.replace(tmp, folder / "index.html")  # a reader never sees half a report
    log.info("report for %s: %s (%d KiB), data docs for %s", ds, folder / "index.html", len(html) // 1024,
             ", ".join(docs) or "no suite")
    return {"report_bytes": len(html), "data_docs_suites": len(docs)}


def report_path(settings: Settings, ds: date) -> Path:
    """Return where the report of day ds lives."""
    return settings.reports_dir / ds.isoformat() / "index.html"

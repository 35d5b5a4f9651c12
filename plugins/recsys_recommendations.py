"""Airflow UI plugin: a "Recommendations" page (latest run, metrics over time, list health, validation, one user's list).

A FastAPI app mounted at /recsys renders server-side HTML with inline SVG charts; an external view puts it in the
Airflow navigation (shown inside the UI at /plugin/recommendations). It reads only the analysts' database, read-only,
and only for users Airflow lets read the recsys_nightly DAG.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse

DAG_ID = "recsys_nightly"
PREFIX = "/recsys"
can_read = Depends(requires_access_dag("GET", param_dag_id=DAG_ID))

app = FastAPI(title="recsys recommendations", docs_url=None, redoc_url=None, openapi_url=None)


def _settings():
    from recsys_tasks.config import load_settings

    return load_settings()


def _docs_link(reports: Path, ds: date) -> str | None:
    """Return the URL of the GE validation page written with the report of day ds, if any."""
    folder = reports / ds.isoformat() / "data_docs"
    pages = sorted(folder.glob("validations/**/*.html"))
    if not pages:
        return None
    from urllib.parse import quote

    return f"{PREFIX}/reports/{ds.isoformat()}/data_docs/{quote(pages[0].relative_to(folder).as_posix())}"


@app.get("/", response_class=HTMLResponse, dependencies=[can_read])
def recommendations_page(user_id: str = Query("", max_length=200), ds: date | None = None) -> str:
    """Render the Recommendations page."""
    from html import escape

    from recsys_tasks.report import data, page

    settings = _settings()
    if not settings.analytics_db.exists():
        return page.document("Recommendations", page.section("runs", "Latest runs", page.svg.empty(
            f"nothing published yet in {settings.analytics_db}: trigger recsys_nightly first")))
    with data.analytics(settings.analytics_db) as con:
        day = ds or data.latest_day(con)
        if day is None:
            return page.document("Recommendations", page.svg.empty("no run recorded yet"))
        hints = ", ".join(data.sample_users(con, day))
        lookup = (f'<form method="get" id="user-lookup"><label>User id <input name="user_id" id="user-id" '
                  f'value="{escape(user_id)}" placeholder="{escape(hints.split(", ")[0] if hints else "")}"></label> '
                  f'<input type="hidden" name="ds" value="{day}"><button type="submit">Show list</button> '
                  f'<span class="muted">e.g. {escape(hints)}</span></form>')
        if user_id:
            lookup += f'<div id="user-list">{page.user_lookup(data.user_list(con, day, user_id), user_id, day)}</div>'
        report = settings.reports_dir / day.isoformat() / "index.html"
        report_link = (f'<p><a href="{PREFIX}/reports/{day}/index.html" target="_blank" rel="noopener" '
                       f'id="report-link">Nightly report of {day}</a></p>' if report.exists() else "")
        body = "".join([
            page.run_status(con, day),
            page.section("lookup", "One user's list", lookup),
            page.quality(con, day),
            page.feedback(con, day),
            page.list_health(con, day),
            page.validation(con, day, _docs_link(settings.reports_dir, day)),
        ])
    return page.document("Recommendations", report_link + body, f"Published lists of {day}, read-only from "
                         f"{settings.analytics_db.name}")


@app.get("/reports/{ds}/{path:path}", dependencies=[can_read])
def report_file(ds: date, path: str) -> FileResponse:
    """Serve a file of a nightly report (the HTML report and its GE data docs)."""
    root = (_settings().reports_dir / ds.isoformat()).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404, detail="no such report file")
    return FileResponse(target)


class RecommendationsPlugin(AirflowPlugin):
    """Adds the Recommendations page to the Airflow UI."""

    name = "recsys_recommendations"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "recsys recommendations"}]
    external_views = [{"name": "Recommendations", "href": f"{PREFIX}/", "url_route": "recommendations",
                       "destination": "nav", "nav_top_level": True}]

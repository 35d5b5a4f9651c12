"""The nightly report: an offline HTML page from the analysts' database, and GE data docs rendered beside it."""
from __future__ import annotations

import re
from datetime import date, datetime

import duckdb
import polars as pl
import pytest

from recsys_tasks.config import REPO_ROOT, load_settings
from recsys_tasks.report import data, write_report
from recsys_tasks.report.writer import report_path

D1, D2 = date(2024, 3, 1), date(2024, 3, 2)


def test_coverage_curve_by_hand():
    items = pl.DataFrame({"item_id": ["A", "B", "C", "D"], "popularity": [10.0, 5.0, 1.0, 0.0],
                          "shown": [3, 1, 0, 0], "available": [True, True, True, False]})
    points, figures = data.coverage_curve(items, steps=4)
    assert points == [(0.0, 0.0), (0.25, 0.75), (0.5, 1.0), (0.75, 1.0), (1.0, 1.0)]
    assert figures == {"catalogue_items": 4, "items_shown": 2, "coverage_of_available": pytest.approx(2 / 3),
                       "slots_on_top_10pct": 0.75}
    assert data.coverage_curve(items.with_columns(shown=pl.lit(0)))[0] == []


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """A RECSYS_HOME whose analysts' database holds two published days."""
    settings = load_settings({"recsys_home": str(tmp_path_factory.mktemp("home"))}, environ={})
    settings.warehouse_dir.mkdir(parents=True)
    with duckdb.connect(str(settings.analytics_db)) as con:
        con.execute((REPO_ROOT / "sql" / "schema" / "work.sql").read_text())
        con.execute("CREATE TABLE features.item_knowledge (ds DATE, item_id VARCHAR, title VARCHAR, category VARCHAR, "
                    "events_recent HUGEINT, available BOOLEAN)")
        con.executemany("INSERT INTO features.item_knowledge VALUES (?, ?, ?, 'Home', ?, true)",
                        [(D2, f"P{i}", f"Item {i}", 50 - i) for i in range(10)])
        for ds, k in ((D1, 3), (D2, 4)):
            con.executemany("INSERT INTO recs.user_topk VALUES (?, ?, ?, ?, ?, ?, 'reason', 'ease', 'control')",
                            [(ds, f"U{u}", r, f"P{(u + r) % 10}", 1.0 / r, "model" if r < 3 else "popularity")
                             for u in range(5) for r in range(1, k + 1)])
            for model, value in (("ease", 0.3 if ds == D1 else 0.35), ("popularity", 0.2)):
                con.execute("INSERT INTO metrics.offline_eval (ds, model, split, track, metric, k, value, served) "
                            "VALUES (?, ?, 'holdout', 'all', 'ndcg', 20, ?, ?)", [ds, model, value, model == "ease"])
            con.execute("INSERT INTO ops.pipeline_runs VALUES (?, ?, 'success', ?, ?, '{}', 'ease', 'abc', '{}', '')",
                        [ds, f"run-{ds}", datetime(2024, 3, 3, 1), datetime(2024, 3, 3, 1, 2)])
        con.executemany("INSERT INTO quality.validation_runs VALUES (?, 'run-v', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            (D2, "events", "events", "user_id_not_null", "user_id", 100, 0, True, [], ["2024-03-02"],
             datetime(2024, 3, 3)),
            (D2, "events", "events", "item_known", "item_id", 100, 7, False, ["e.csv:3 (X1)"], ["2024-03-02"],
             datetime(2024, 3, 3)),
            (D2, "items", "items", "title_not_null", "title", 10, 0, True, [], ["2024-03-02"], datetime(2024, 3, 3))])
        con.execute("INSERT INTO quality.quarantine VALUES ('events', ?, 'e.csv', 3, 'item_known', 'item_known', "
                    "'item_id X1 unknown', '{}')", [D2])
    return settings


def test_report_is_written_with_every_section_and_no_network_reference(settings):
    counts = write_report(settings, D2, "run-2")
    html = report_path(settings, D2).read_text()
    assert counts == {"report_bytes": len(html), "data_docs_suites": 2}
    for anchor in ("runs", "quality", "feedback", "health", "coverage", "scores", "validation", "data-docs",
                   "quarantine"):
        assert f'<section id="{anchor}">' in html, anchor
    assert html.count("<svg") >= 7
    assert "1 of 2 rules passed" not in html and "2 of 3 rules passed" in html
    assert set(re.findall(r'(?:src|href)="(https?:[^"]+)"', html)) == set()  # nothing fetched from the network
    assert "<script" not in html
    feedback = html.split('<section id="feedback">')[1].split("</section>")[0]
    assert "not published yet" in feedback or "no data yet" in feedback  # no feedback before lists have aged


def test_data_docs_are_great_expectations_pages_beside_the_report(settings):
    write_report(settings, D2, "run-2")
    docs = report_path(settings, D2).parent / "data_docs"
    pages = sorted(p.relative_to(docs).parts[:2] for p in docs.glob("validations/**/*.html"))
    assert pages == [("validations", "events"), ("validations", "items")]
    events = next(docs.glob("validations/events/**/*.html")).read_text()
    assert "item_known" in events and "Expectation Validation Result" in events
    html = report_path(settings, D2).read_text()
    for link in re.findall(r'href="(data_docs/[^"]+)"', html):
        from urllib.parse import unquote
        assert (docs.parent / unquote(link)).exists(), link


def test_older_day_report_shows_only_what_was_known_then(settings):
    write_report(settings, D1, "run-1")
    html = report_path(settings, D1).read_text()
    assert "2024-03-02" not in html.split('<section id="quarantine">')[0].split("</h1>", 1)[1]
    assert "no validation recorded on or before this day" in html

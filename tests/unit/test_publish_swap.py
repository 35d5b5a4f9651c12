"""The analysts' file is replaced by one rename: open readers keep their day, new readers get the new one."""
import duckdb

from recsys_tasks.publish import swap_in


def _db(path, day: str) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA recs")
    con.execute("CREATE TABLE recs.user_topk AS SELECT CAST(? AS DATE) AS ds, range AS rank FROM range(1000)", [day])
    con.close()


def test_open_reader_keeps_the_old_day_and_a_new_reader_sees_the_new_day(tmp_path):
    final, fresh = tmp_path / "analytics.duckdb", tmp_path / ".analytics.duckdb.tmp"
    _db(final, "2024-01-01")
    reader = duckdb.connect(str(final), read_only=True)
    _db(fresh, "2024-01-02")
    swap_in(fresh, final)
    assert not fresh.exists()
    assert str(reader.execute("SELECT max(ds), count(*) FROM recs.user_topk").fetchall()[0][0]) == "2024-01-01"
    reader.close()
    with duckdb.connect(str(final), read_only=True) as later:
        assert later.execute("SELECT CAST(max(ds) AS VARCHAR), count(*) FROM recs.user_topk").fetchall() == \
            [("2024-01-02", 1000)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analytics.duckdb"]  # no WAL or temp file left

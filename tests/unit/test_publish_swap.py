"""The analysts' file: replaced by one rename (open readers keep their day, new readers get the new one), in a
storage format older DuckDB clients read."""
import duckdb

from recsys_tasks.publish import ANALYSTS_STORAGE_VERSION, attach_analysts_file, swap_in


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



def test_analysts_file_is_written_in_a_format_duckdb_1_4_clients_read(tmp_path):
    target = tmp_path / "analytics.duckdb"
    with duckdb.connect() as work:
        attach_analysts_file(work, target)
        work.execute("CREATE SCHEMA pub.recs")
        work.execute("CREATE TABLE pub.recs.user_topk AS SELECT range AS rank FROM range(10)")
        work.execute("DETACH pub")
    with duckdb.connect(str(target)) as con:  # publish reopens the file for its views and comments
        con.execute("CREATE VIEW recs.latest AS SELECT * FROM recs.user_topk")
        con.execute("CHECKPOINT")
    with duckdb.connect(str(target), read_only=True) as con:
        tags = con.execute("SELECT tags FROM duckdb_databases() WHERE database_name = 'analytics'").fetchone()[0]
        assert tags["storage_version"].startswith(ANALYSTS_STORAGE_VERSION)
        assert con.execute("SELECT count(*) FROM recs.latest").fetchone() == (10,)

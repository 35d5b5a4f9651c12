-- The pipeline's private working database: landed raw rows, clean history, features, recs and run logs.
-- Idempotent: runs at every connection.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS clean;
CREATE SCHEMA IF NOT EXISTS quality;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS features;
CREATE SCHEMA IF NOT EXISTS metrics;
CREATE SCHEMA IF NOT EXISTS recs;
CREATE SCHEMA IF NOT EXISTS ops;

CREATE TABLE IF NOT EXISTS raw.partitions (
    kind VARCHAR, dt DATE, checksum VARCHAR, files VARCHAR[], status VARCHAR,
    n_rows BIGINT, landed_by_run VARCHAR, validated_by_run VARCHAR,
    PRIMARY KEY (kind, dt)
);
CREATE TABLE IF NOT EXISTS raw.file_columns (kind VARCHAR, dt DATE, file VARCHAR, columns VARCHAR[]);
CREATE TABLE IF NOT EXISTS raw.events_landed (
    user_id VARCHAR, item_id VARCHAR, event_type VARCHAR, event_ts VARCHAR, event_id VARCHAR, session_id VARCHAR,
    quantity VARCHAR, price VARCHAR, rating VARCHAR, context VARCHAR, _file VARCHAR, _row BIGINT, _dt DATE
);
CREATE TABLE IF NOT EXISTS raw.items_landed (
    item_id VARCHAR, title VARCHAR, description VARCHAR, brand VARCHAR, category VARCHAR, price VARCHAR,
    available VARCHAR, attributes VARCHAR, image_embedding VARCHAR, _file VARCHAR, _row BIGINT, _dt DATE
);

CREATE TABLE IF NOT EXISTS clean.events (
    dt DATE, user_id VARCHAR, item_id VARCHAR, event_type VARCHAR, event_ts TIMESTAMP, event_id VARCHAR,
    session_id VARCHAR, quantity DOUBLE, price DOUBLE, rating DOUBLE, context VARCHAR, _file VARCHAR, _row BIGINT
);
CREATE TABLE IF NOT EXISTS clean.items (
    dt DATE, item_id VARCHAR, title VARCHAR, description VARCHAR, brand VARCHAR, category VARCHAR, price DOUBLE,
    available BOOLEAN, attributes VARCHAR, image_embedding FLOAT[], _file VARCHAR, _row BIGINT
);

CREATE TABLE IF NOT EXISTS quality.quarantine (
    kind VARCHAR, dt DATE, file VARCHAR, "row" BIGINT, rule VARCHAR, rules VARCHAR, detail VARCHAR, record VARCHAR
);
CREATE TABLE IF NOT EXISTS quality.validation_runs (
    ds DATE, run_id VARCHAR, kind VARCHAR, suite VARCHAR, rule VARCHAR, "column" VARCHAR, checked BIGINT,
    failed BIGINT, success BOOLEAN, examples VARCHAR[], partitions VARCHAR[], validated_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS features.text_embedding_cache (
    text_hash VARCHAR, model VARCHAR, embedding FLOAT[], PRIMARY KEY (text_hash, model)
);

CREATE TABLE IF NOT EXISTS metrics.offline_eval (
    ds DATE, model VARCHAR, split VARCHAR, track VARCHAR, metric VARCHAR, k INTEGER, value DOUBLE,
    n_users BIGINT, served BOOLEAN, train_until DATE, eval_from DATE, eval_until DATE
);

CREATE TABLE IF NOT EXISTS recs.user_topk (
    ds DATE, user_id VARCHAR, rank INTEGER, item_id VARCHAR, score DOUBLE, strategy VARCHAR, reason VARCHAR,
    model VARCHAR, variant VARCHAR
);
CREATE TABLE IF NOT EXISTS recs.default_topk (
    ds DATE, segment VARCHAR, rank INTEGER, item_id VARCHAR, score DOUBLE, strategy VARCHAR, reason VARCHAR
);
CREATE TABLE IF NOT EXISTS recs.item_similar (
    ds DATE, item_id VARCHAR, kind VARCHAR, rank INTEGER, similar_item_id VARCHAR, score DOUBLE
);

CREATE TABLE IF NOT EXISTS ops.pipeline_runs (
    ds DATE, run_id VARCHAR, status VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, row_counts JSON,
    model VARCHAR, code_version VARCHAR, stage_durations JSON, message VARCHAR
);
CREATE TABLE IF NOT EXISTS ops.stage_runs (
    ds DATE, run_id VARCHAR, stage VARCHAR, started_at TIMESTAMP, duration_s DOUBLE, row_counts JSON, status VARCHAR
);

-- The recommendation policy's business rules, kept as data (README "Recommendation policy" says how to fill them).
CREATE SCHEMA IF NOT EXISTS policy;
CREATE TABLE IF NOT EXISTS policy.block_list (
    item_id VARCHAR, brand VARCHAR, category VARCHAR, reason VARCHAR, blocked_from DATE, blocked_until DATE
);
CREATE TABLE IF NOT EXISTS policy.repurchase_categories (category VARCHAR, repurchase BOOLEAN, note VARCHAR);
CREATE TABLE IF NOT EXISTS policy.user_opt_outs (user_id VARCHAR, scope VARCHAR, value VARCHAR, opted_out_on DATE);
CREATE TABLE IF NOT EXISTS policy.age_verified_users (user_id VARCHAR, age_at_least INTEGER, verified_on DATE);

CREATE TABLE IF NOT EXISTS metrics.online_feedback (
    ds DATE, list_ds DATE, days_after INTEGER, variant VARCHAR, strategy VARCHAR, metric VARCHAR, k INTEGER,
    value DOUBLE, ci_low DOUBLE, ci_high DOUBLE, n_users BIGINT
);
CREATE TABLE IF NOT EXISTS metrics.list_health (
    ds DATE, variant VARCHAR, segment VARCHAR, metric VARCHAR, k INTEGER, value DOUBLE, n_users BIGINT
);

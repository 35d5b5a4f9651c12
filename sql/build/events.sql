-- staging.events: clean events of the run's history window (dt <= $ds), with context fields pulled out.
CREATE OR REPLACE TABLE staging.events AS
SELECT
    e.dt, e.user_id, e.item_id, e.event_type, e.event_ts, e.event_id, e.session_id,
    COALESCE(e.quantity, 1) AS quantity,
    e.price, e.rating,
    NULLIF(json_extract_string(e.context, '$.country'), '') AS country,
    NULLIF(json_extract_string(e.context, '$.device'), '') AS device,
    NULLIF(json_extract_string(e.context, '$.query'), '') AS search_query,
    CASE WHEN e.event_type = 'purchase' THEN COALESCE(e.quantity, 1) * COALESCE(e.price, 0) ELSE 0 END AS revenue
FROM clean.events AS e
WHERE e.dt <= $ds AND e.dt > $ds - to_days(CAST($history_days AS INTEGER))
ORDER BY e.user_id, e.event_ts;

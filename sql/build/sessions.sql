-- staging.sessions: a user's visit; the given session_id, else a new session after $gap_minutes of silence.
CREATE OR REPLACE TABLE staging.sessions AS
WITH ordered AS (
    SELECT *,
        CASE WHEN lag(event_ts) OVER w IS NULL
               OR event_ts - lag(event_ts) OVER w > to_minutes(CAST($gap_minutes AS INTEGER))
             THEN 1 ELSE 0 END AS starts_session
    FROM staging.events
    WINDOW w AS (PARTITION BY user_id ORDER BY event_ts, event_id)
),
numbered AS (
    SELECT *, COALESCE(session_id, user_id || '#' || sum(starts_session) OVER (
        PARTITION BY user_id ORDER BY event_ts, event_id ROWS UNBOUNDED PRECEDING)) AS session_key
    FROM ordered
)
SELECT user_id, session_key, min(event_ts) AS started_at, max(event_ts) AS ended_at,
       count(*) AS n_events, count(DISTINCT item_id) AS n_items,
       count(*) FILTER (WHERE event_type = 'purchase') AS n_purchases,
       sum(revenue) AS revenue, any_value(country) AS country, any_value(device) AS device
FROM numbered
GROUP BY user_id, session_key
ORDER BY user_id, started_at;

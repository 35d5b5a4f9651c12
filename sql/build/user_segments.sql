-- staging.user_segments: a user's segment is their most frequent country (ties: alphabetical), else 'unknown'.
CREATE OR REPLACE TABLE staging.user_segments AS
WITH counted AS (
    SELECT user_id, country, count(*) AS n
    FROM staging.events
    WHERE country IS NOT NULL
    GROUP BY user_id, country
),
ranked AS (
    SELECT user_id, country, row_number() OVER (PARTITION BY user_id ORDER BY n DESC, country) AS pick
    FROM counted
)
SELECT u.user_id, COALESCE(r.country, 'unknown') AS segment
FROM (SELECT DISTINCT user_id FROM staging.events) AS u
LEFT JOIN ranked AS r ON r.user_id = u.user_id AND r.pick = 1
ORDER BY u.user_id;

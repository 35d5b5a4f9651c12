-- Per user and item, before $until: on how many days the user bought it, and how long ago the first and the last
-- of those days were (the user's own re-purchase cycle).
SELECT user_id, item_id,
       count(DISTINCT CAST(event_ts AS DATE)) AS purchase_days,
       date_diff('day', CAST(min(event_ts) AS DATE), CAST($until AS DATE)) AS days_since_first,
       date_diff('day', CAST(max(event_ts) AS DATE), CAST($until AS DATE)) AS days_since_last
FROM staging.events
WHERE event_type = 'purchase' AND event_ts < $until
GROUP BY user_id, item_id
ORDER BY user_id, item_id

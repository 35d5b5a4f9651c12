-- Each user's events before $until, oldest first, with their age in days at $until; a run of events on one item
-- (view, cart, purchase) is one step.
SELECT user_id, item_id, date_diff('second', event_ts, $until) / 86400.0 AS age_days
FROM (
    SELECT user_id, item_id, event_ts, event_id,
           lag(item_id) OVER (PARTITION BY user_id ORDER BY event_ts, event_id, item_id) AS previous_item
    FROM staging.events
    WHERE event_ts < $until
)
WHERE previous_item IS NULL OR previous_item <> item_id
ORDER BY user_id, event_ts, event_id, item_id

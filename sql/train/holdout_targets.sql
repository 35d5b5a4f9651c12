-- What users did in the holdout window [$start, $until): the distinct items of the target event type.
SELECT DISTINCT user_id, item_id
FROM staging.events
WHERE event_ts >= $start AND event_ts < $until AND event_type = $target_type
ORDER BY user_id, item_id

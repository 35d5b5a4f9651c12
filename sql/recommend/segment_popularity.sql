-- Recent popularity per segment (a user's country), event-type weighted, over the last $days days up to $until.
SELECT s.segment, e.item_id,
       sum(w.weight) AS popularity,
       count(DISTINCT e.user_id) AS users
FROM staging.events AS e JOIN staging.user_segments AS s USING (user_id)
JOIN staging.event_weights AS w USING (event_type)
WHERE e.event_ts >= $until - to_days(CAST($days AS INTEGER)) AND e.event_ts < $until
GROUP BY s.segment, e.item_id
ORDER BY s.segment, e.item_id

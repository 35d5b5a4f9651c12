-- Recent popularity per visit context (the device), event-type weighted, over the last $days days up to $until:
-- lists for shoppers we do not know yet, by what they browse on.
SELECT 'device:' || e.device AS segment, e.item_id,
       sum(w.weight) AS popularity,
       count(DISTINCT e.user_id) AS users
FROM staging.events AS e JOIN staging.event_weights AS w USING (event_type)
WHERE e.device IS NOT NULL AND e.event_ts >= $until - to_days(CAST($days AS INTEGER)) AND e.event_ts < $until
GROUP BY 1, 2
ORDER BY 1, 2

-- Recent popularity before $until: event-type weighted count over the last $days days (no recency decay).
SELECT item_id,
       sum(w.weight) AS popularity
FROM staging.events JOIN staging.event_weights AS w USING (event_type)
WHERE event_ts >= $until - to_days(CAST($days AS INTEGER)) AND event_ts < $until
GROUP BY item_id
ORDER BY item_id

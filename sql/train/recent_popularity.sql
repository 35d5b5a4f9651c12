-- Recent popularity before $until: event-type weighted count over the last $days days (no recency decay).
SELECT item_id,
       sum(CASE event_type WHEN 'view' THEN $w_view WHEN 'click' THEN $w_click WHEN 'add_to_cart' THEN $w_add_to_cart
                           WHEN 'purchase' THEN $w_purchase WHEN 'rating' THEN $w_rating ELSE 0 END) AS popularity
FROM staging.events
WHERE event_ts >= $until - to_days(CAST($days AS INTEGER)) AND event_ts < $until
GROUP BY item_id
ORDER BY item_id

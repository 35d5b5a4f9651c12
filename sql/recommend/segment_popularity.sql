-- Recent popularity per segment (a user's country), event-type weighted, over the last $days days up to $until.
SELECT s.segment, e.item_id,
       sum(CASE e.event_type WHEN 'view' THEN $w_view WHEN 'click' THEN $w_click WHEN 'add_to_cart' THEN $w_add_to_cart
                             WHEN 'purchase' THEN $w_purchase WHEN 'rating' THEN $w_rating ELSE 0 END) AS popularity,
       count(DISTINCT e.user_id) AS users
FROM staging.events AS e JOIN staging.user_segments AS s USING (user_id)
WHERE e.event_ts >= $until - to_days(CAST($days AS INTEGER)) AND e.event_ts < $until
GROUP BY s.segment, e.item_id
ORDER BY s.segment, e.item_id

-- staging.basket_lines: the distinct items a user carted or bought in one session (the unit of "bought together").
CREATE OR REPLACE TABLE staging.basket_lines AS
SELECT DISTINCT COALESCE(e.session_id, e.user_id || '@' || CAST(e.dt AS VARCHAR)) AS session_key, e.item_id
FROM staging.events AS e
WHERE e.event_type IN ('purchase', 'add_to_cart')
  AND e.dt > $ds - to_days(CAST($window_days AS INTEGER));

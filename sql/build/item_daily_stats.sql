-- staging.item_daily_stats: per item and day, how often it was seen, clicked, carted and bought.
CREATE OR REPLACE TABLE staging.item_daily_stats AS
SELECT dt, item_id,
       count(*) FILTER (WHERE event_type = 'view') AS views,
       count(*) FILTER (WHERE event_type = 'click') AS clicks,
       count(*) FILTER (WHERE event_type = 'add_to_cart') AS carts,
       count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
       count(*) FILTER (WHERE event_type = 'rating') AS ratings,
       count(DISTINCT user_id) AS users,
       sum(revenue) AS revenue
FROM staging.events
GROUP BY dt, item_id
ORDER BY dt, item_id;

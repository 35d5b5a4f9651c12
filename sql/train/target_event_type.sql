-- The strongest signal this shop's data has: purchases, else ratings, else carts, clicks, views.
SELECT event_type
FROM (SELECT DISTINCT event_type FROM staging.events)
ORDER BY CASE event_type WHEN 'purchase' THEN 1 WHEN 'rating' THEN 2 WHEN 'add_to_cart' THEN 3
                         WHEN 'click' THEN 4 ELSE 5 END
LIMIT 1

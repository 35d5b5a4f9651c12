-- Health of the published lists per day up to $ds: users served, items shown, exposure concentration (Gini over
-- the items shown) and the share of slots filled from popularity.
WITH exposure AS (
    SELECT ds, item_id, count(*) AS shown
    FROM recs.user_topk
    WHERE ds <= $ds
    GROUP BY ds, item_id
), ranked AS (
    SELECT ds, shown,
           row_number() OVER (PARTITION BY ds ORDER BY shown, item_id) AS i,
           count(*) OVER (PARTITION BY ds) AS m,
           sum(shown) OVER (PARTITION BY ds) AS total
    FROM exposure
), gini AS (
    SELECT ds, 2.0 * sum(i * shown) / (any_value(m) * any_value(total)) - (any_value(m) + 1.0) / any_value(m) AS gini
    FROM ranked
    GROUP BY ds
)
SELECT l.ds,
       count(DISTINCT l.user_id) AS users,
       count(*) AS slots,
       count(DISTINCT l.item_id) AS items_shown,
       any_value(g.gini) AS gini,
       avg(CASE WHEN l.strategy ILIKE '%popular%' THEN 1.0 ELSE 0.0 END) AS popularity_share
FROM recs.user_topk AS l
JOIN gini AS g USING (ds)
WHERE l.ds <= $ds
GROUP BY l.ds
ORDER BY l.ds;

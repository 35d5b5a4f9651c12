-- Per top category, before $until: the share of (buyer, item) pairs bought on two or more days. A category whose
-- shoppers re-order keeps bought items in their lists unless policy.repurchase_categories says otherwise.
WITH pairs AS (
    SELECT user_id, item_id, count(DISTINCT CAST(event_ts AS DATE)) AS purchase_days
    FROM staging.events
    WHERE event_type = 'purchase' AND event_ts < $until
    GROUP BY user_id, item_id
)
SELECT COALESCE(NULLIF(trim(split_part(i.category, '>', 1)), ''), 'uncategorised') AS top_category,
       avg(CASE WHEN p.purchase_days >= 2 THEN 1.0 ELSE 0.0 END) AS repurchase_share,
       count(*) AS pairs
FROM pairs AS p JOIN staging.items AS i USING (item_id)
GROUP BY 1
ORDER BY 1

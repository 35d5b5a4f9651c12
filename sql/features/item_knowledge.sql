-- staging.item_knowledge_base: what the shop knows about each item on $ds, without the text embedding.
CREATE OR REPLACE TABLE staging.item_knowledge_base AS
WITH recent AS (
    SELECT item_id,
           sum(views) FILTER (WHERE dt > $ds - to_days(CAST($popularity_days AS INTEGER))) AS views_recent,
           sum(purchases) FILTER (WHERE dt > $ds - to_days(CAST($popularity_days AS INTEGER))) AS purchases_recent,
           sum(views + clicks + carts + purchases + ratings)
               FILTER (WHERE dt > $ds - to_days(CAST($popularity_days AS INTEGER))) AS events_recent,
           sum(views + clicks + carts + purchases + ratings) FILTER (WHERE dt > $ds - INTERVAL 7 DAY) AS events_7d,
           sum(views + clicks + carts + purchases + ratings)
               FILTER (WHERE dt <= $ds - INTERVAL 7 DAY AND dt > $ds - INTERVAL 14 DAY) AS events_prev_7d,
           sum(users) FILTER (WHERE dt > $ds - to_days(CAST($popularity_days AS INTEGER))) AS user_days_recent
    FROM staging.item_daily_stats
    GROUP BY item_id
),
co AS (
    -- bought (or carted) in the same session: "often bought together"
    SELECT a.item_id, b.item_id AS other, count(DISTINCT a.session_key) AS n
    FROM staging.basket_lines AS a JOIN staging.basket_lines AS b
      ON a.session_key = b.session_key AND a.item_id <> b.item_id
    GROUP BY a.item_id, b.item_id
),
co_top AS (
    SELECT item_id, list(other ORDER BY n DESC, other) AS co_purchased
    FROM (SELECT *, row_number() OVER (PARTITION BY item_id ORDER BY n DESC, other) AS r FROM co)
    WHERE r <= 10
    GROUP BY item_id
),
items AS (
    SELECT i.*,
           CASE WHEN i.category IS NULL OR trim(i.category) = '' THEN []
                ELSE list_transform(string_split(i.category, '>'), lambda x: trim(x)) END AS category_path
    FROM staging.items AS i
)
SELECT
    CAST($ds AS DATE) AS ds,
    i.item_id, i.title, i.brand, i.category, i.category_path,
    COALESCE(i.category_path[1], 'uncategorised') AS top_category,
    i.description, i.price,
    CASE WHEN i.price IS NULL THEN 'unknown'
         ELSE ['budget', 'value', 'mid', 'premium', 'luxury'][
             ntile(5) OVER (PARTITION BY COALESCE(i.category_path[1], '') ORDER BY i.price, i.item_id)] END AS price_band,
    i.available, i.attributes, i.image_embedding, i.first_seen,
    -- new: first seen at most $new_days days before $ds, as the lists, health and gbdt count it
    i.first_seen >= CAST($ds AS DATE) - to_days(CAST($new_days AS INTEGER)) AS is_new,
    COALESCE(r.views_recent, 0) AS views_recent,
    COALESCE(r.purchases_recent, 0) AS purchases_recent,
    COALESCE(r.events_recent, 0) AS events_recent,
    (COALESCE(r.events_7d, 0) + 1.0) / (COALESCE(r.events_prev_7d, 0) + 1.0) AS trend_7d,
    COALESCE(c.co_purchased, []) AS co_purchased,
    concat_ws('. ', i.title, i.brand, array_to_string(i.category_path, ' > '), i.description) AS item_text
FROM items AS i
LEFT JOIN recent AS r USING (item_id)
LEFT JOIN co_top AS c USING (item_id)
ORDER BY i.item_id;

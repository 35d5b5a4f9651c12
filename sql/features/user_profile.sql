-- staging.user_profile_base: who each user is on $ds: activity, recency/frequency/monetary, tastes, segment.
CREATE OR REPLACE TABLE staging.user_profile_base AS
WITH activity AS (
    SELECT user_id,
           count(*) FILTER (WHERE event_type = 'view') AS views,
           count(*) FILTER (WHERE event_type = 'click') AS clicks,
           count(*) FILTER (WHERE event_type = 'add_to_cart') AS carts,
           count(*) FILTER (WHERE event_type = 'purchase') AS purchase_lines,
           count(*) FILTER (WHERE event_type = 'rating') AS ratings,
           count(DISTINCT item_id) AS distinct_items,
           min(event_ts) AS first_seen_ts,
           max(event_ts) AS last_seen_ts,
           sum(revenue) AS monetary,
           median(price) FILTER (WHERE event_type = 'purchase') AS median_purchase_price
    FROM staging.events
    GROUP BY user_id
),
sessions AS (
    SELECT user_id, count(*) AS sessions, count(*) FILTER (WHERE n_purchases > 0) AS orders
    FROM staging.sessions GROUP BY user_id
),
tastes AS (
    SELECT i.user_id, k.top_category, k.brand, k.price_band, i.weight
    FROM staging.interactions AS i JOIN staging.item_knowledge_base AS k USING (item_id)
),
category_affinity AS (
    SELECT user_id, list({'category': top_category, 'share': round(share, 4)} ORDER BY share DESC, top_category)
               FILTER (WHERE r <= 3) AS top_categories
    FROM (SELECT user_id, top_category, sum(weight) / sum(sum(weight)) OVER (PARTITION BY user_id) AS share,
                 row_number() OVER (PARTITION BY user_id ORDER BY sum(weight) DESC, top_category) AS r
          FROM tastes GROUP BY user_id, top_category)
    GROUP BY user_id
),
brand_affinity AS (
    SELECT user_id, list({'brand': brand, 'share': round(share, 4)} ORDER BY share DESC, brand)
               FILTER (WHERE r <= 3) AS top_brands
    FROM (SELECT user_id, brand, sum(weight) / sum(sum(weight)) OVER (PARTITION BY user_id) AS share,
                 row_number() OVER (PARTITION BY user_id ORDER BY sum(weight) DESC, brand) AS r
          FROM tastes WHERE brand IS NOT NULL GROUP BY user_id, brand)
    GROUP BY user_id
),
price_band AS (
    SELECT user_id, price_band
    FROM (SELECT user_id, price_band,
                 row_number() OVER (PARTITION BY user_id ORDER BY sum(weight) DESC, price_band) AS r
          FROM tastes GROUP BY user_id, price_band)
    WHERE r = 1
),
devices AS (
    SELECT user_id, device
    FROM (SELECT user_id, device, row_number() OVER (PARTITION BY user_id ORDER BY count(*) DESC, device) AS r
          FROM staging.events WHERE device IS NOT NULL GROUP BY user_id, device)
    WHERE r = 1
)
SELECT
    CAST($ds AS DATE) AS ds, a.user_id, s.segment, d.device,
    a.views, a.clicks, a.carts, a.purchase_lines, a.ratings, a.distinct_items,
    COALESCE(se.sessions, 0) AS sessions,
    COALESCE(se.orders, 0) AS frequency,
    date_diff('day', CAST(a.last_seen_ts AS DATE), CAST($ds AS DATE)) AS recency_days,
    round(a.monetary, 2) AS monetary,
    a.median_purchase_price,
    COALESCE(p.price_band, 'unknown') AS price_band,
    COALESCE(c.top_categories, []) AS top_categories,
    COALESCE(b.top_brands, []) AS top_brands,
    a.first_seen_ts, a.last_seen_ts
FROM activity AS a
JOIN staging.user_segments AS s USING (user_id)
LEFT JOIN sessions AS se USING (user_id)
LEFT JOIN category_affinity AS c USING (user_id)
LEFT JOIN brand_affinity AS b USING (user_id)
LEFT JOIN price_band AS p USING (user_id)
LEFT JOIN devices AS d USING (user_id)
ORDER BY a.user_id;

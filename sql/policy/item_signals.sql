-- What the policy knows about each catalogue item before $until: category, brand, availability, age and country
-- restrictions from its attributes, the day it was first seen, this week's demand and how many users it reached.
WITH week AS (
    SELECT item_id, sum(views + clicks + carts + purchases + ratings) AS events_7d
    FROM staging.item_daily_stats
    WHERE dt >= CAST($until AS DATE) - INTERVAL 7 DAY AND dt < CAST($until AS DATE)
    GROUP BY item_id
),
reach AS (
    SELECT item_id, count(DISTINCT user_id) AS users
    FROM staging.events
    WHERE event_ts < $until
    GROUP BY item_id
)
SELECT
    i.item_id, i.title,
    NULLIF(trim(i.brand), '') AS brand,
    COALESCE(NULLIF(trim(split_part(i.category, '>', 1)), ''), 'uncategorised') AS top_category,
    COALESCE(i.available, TRUE) AS available,
    i.first_seen,
    COALESCE(TRY_CAST(json_extract_string(i.attributes, '$.min_age') AS INTEGER),
             CASE WHEN TRY_CAST(json_extract_string(i.attributes, '$.age_restricted') AS BOOLEAN)
                  THEN CAST($restricted_min_age AS INTEGER) END,
             0) AS min_age,
    TRY_CAST(json_extract(i.attributes, '$.countries') AS VARCHAR[]) AS countries,
    TRY_CAST(json_extract(i.attributes, '$.blocked_countries') AS VARCHAR[]) AS blocked_countries,
    COALESCE(w.events_7d, 0) AS events_7d,
    COALESCE(r.users, 0) AS users
FROM staging.items AS i
LEFT JOIN week AS w USING (item_id)
LEFT JOIN reach AS r USING (item_id)
ORDER BY i.item_id

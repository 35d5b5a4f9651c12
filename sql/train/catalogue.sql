-- The catalogue a model learns on: every item listed before $until, or with an interaction in the table
-- ({interactions}, staging.interactions or staging.interactions_holdout), ordered by item_id; listed_days: days
-- from its first listing to $as_of (NULL for an item known only from interactions and listed after $until).
SELECT item_id, date_diff('day', min(first_seen), CAST($as_of AS DATE)) AS listed_days
FROM (
    SELECT item_id, first_seen FROM staging.items WHERE first_seen < CAST($until AS DATE)
    UNION ALL
    SELECT DISTINCT item_id, CAST(NULL AS DATE) AS first_seen FROM staging.{interactions}
)
GROUP BY item_id
ORDER BY item_id

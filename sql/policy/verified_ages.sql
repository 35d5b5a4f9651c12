-- The age each user is known to be at least on $ds: a verification in policy.age_verified_users, or a past purchase
-- of an age-restricted item (the shop checked the age at checkout).
WITH restricted AS (
    SELECT item_id,
           COALESCE(TRY_CAST(json_extract_string(attributes, '$.min_age') AS INTEGER),
                    CASE WHEN TRY_CAST(json_extract_string(attributes, '$.age_restricted') AS BOOLEAN)
                         THEN CAST($restricted_min_age AS INTEGER) END) AS min_age
    FROM staging.items
)
SELECT user_id, max(age) AS age_at_least
FROM (
    SELECT user_id, age_at_least AS age FROM policy.age_verified_users
    WHERE COALESCE(verified_on, DATE '0001-01-01') <= CAST($ds AS DATE)
    UNION ALL
    SELECT e.user_id, r.min_age FROM staging.events AS e JOIN restricted AS r USING (item_id)
    WHERE e.event_type = 'purchase' AND r.min_age > 0
)
GROUP BY user_id
ORDER BY user_id

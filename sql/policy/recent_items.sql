-- Each user's $n most recent distinct items in staging.{table} (interactions before the cut-off), with weights.
SELECT user_id, item_id, weight
FROM (SELECT user_id, item_id, weight,
             row_number() OVER (PARTITION BY user_id ORDER BY last_ts DESC, item_id) AS r
      FROM staging.{table})
WHERE r <= $n
ORDER BY user_id, item_id

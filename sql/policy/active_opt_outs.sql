-- Users' opt-outs in force on $ds: scope all (no list), personalisation (a non-personalised list), category or
-- brand (never that category or brand; value names it).
SELECT DISTINCT user_id, lower(trim(scope)) AS scope, trim(value) AS value
FROM policy.user_opt_outs
WHERE COALESCE(opted_out_on, DATE '0001-01-01') <= CAST($ds AS DATE)
ORDER BY ALL

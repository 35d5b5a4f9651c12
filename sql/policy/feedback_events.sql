-- What users did after $first up to the end of $ds (never later): target events with their revenue.
SELECT dt, user_id, item_id, COALESCE(quantity, 1) * COALESCE(price, 0) AS revenue
FROM clean.events
WHERE event_type = $event_type AND dt > CAST($first AS DATE) AND dt <= CAST($ds AS DATE)
ORDER BY dt, user_id, item_id

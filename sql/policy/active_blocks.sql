-- Items blocked on $ds by policy.block_list: a row names an item, a brand or a category (a path prefix), and is in
-- force from blocked_from to blocked_until (inclusive; NULL = open).
SELECT i.item_id, min(b.reason) AS reason
FROM staging.items AS i
JOIN policy.block_list AS b
  ON b.item_id = i.item_id
  OR lower(trim(b.brand)) = lower(trim(i.brand))
  OR (NULLIF(trim(b.category), '') IS NOT NULL
      AND (trim(i.category) = trim(b.category) OR starts_with(trim(i.category), trim(b.category) || ' >')))
WHERE COALESCE(b.blocked_from, DATE '0001-01-01') <= CAST($ds AS DATE)
  AND COALESCE(b.blocked_until, DATE '9999-12-31') >= CAST($ds AS DATE)
GROUP BY i.item_id
ORDER BY i.item_id

-- The lists published for $ds with each user's variant and segment.
SELECT r.user_id, r.rank, r.item_id, COALESCE(r.variant, 'control') AS variant,
       COALESCE(s.segment, 'unknown') AS segment
FROM recs.user_topk AS r LEFT JOIN staging.user_segments AS s USING (user_id)
WHERE r.ds = $ds
ORDER BY r.user_id, r.rank

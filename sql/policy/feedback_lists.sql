-- Lists published on the $days days before $ds (never $ds itself: feedback scores what happened after a list).
SELECT ds AS list_ds, user_id, rank, item_id, strategy, COALESCE(variant, 'control') AS variant
FROM recs.user_topk
WHERE ds < CAST($ds AS DATE) AND ds >= CAST($ds AS DATE) - to_days(CAST($days AS INTEGER))
ORDER BY list_ds, user_id, rank

-- A user's newest list, with titles and the reason for each item.
-- Parameter: $user_id (e.g. 'U000001').
SELECT r.ds, r.rank, r.item_id, k.title, k.brand, k.category, round(r.score, 4) AS score, r.strategy, r.reason,
       r.model, r.variant
FROM recs.latest_user_topk AS r
LEFT JOIN features.item_knowledge AS k ON k.item_id = r.item_id  -- the catalogue snapshot of the newest day
WHERE r.user_id = $user_id
ORDER BY r.rank;

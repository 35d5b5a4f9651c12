-- One user's list of day $ds with titles from the newest catalogue snapshot.
SELECT r.rank, r.item_id, k.title, k.category, r.score, r.strategy, r.reason, r.model, r.variant
FROM recs.user_topk AS r
LEFT JOIN features.item_knowledge AS k
    ON k.item_id = r.item_id AND k.ds = (SELECT max(ds) FROM features.item_knowledge)
WHERE r.ds = $ds AND r.user_id = $user_id
ORDER BY r.rank;

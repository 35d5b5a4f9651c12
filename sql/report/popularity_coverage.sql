-- Each item of the newest catalogue snapshot, most popular first, with how often day $ds's lists show it.
WITH shown AS (
    SELECT item_id, count(*) AS shown FROM recs.user_topk WHERE ds = $ds GROUP BY item_id
)
SELECT k.item_id, coalesce(k.events_recent, 0)::DOUBLE AS popularity, coalesce(s.shown, 0) AS shown,
       coalesce(k.available, true) AS available
FROM features.item_knowledge AS k
LEFT JOIN shown AS s USING (item_id)
WHERE k.ds = (SELECT max(ds) FROM features.item_knowledge)
ORDER BY popularity DESC, k.item_id;

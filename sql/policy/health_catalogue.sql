-- Per catalogue item on $ds, what list health needs: text embedding, top category, availability, whether it is new
-- (item_knowledge: first seen within new_item_days) and how many users ever touched it (for novelty).
WITH reach AS (
    SELECT item_id, count(DISTINCT user_id) AS users FROM staging.events GROUP BY item_id
)
SELECT k.item_id, k.text_embedding, k.top_category,
       COALESCE(k.available, TRUE) AS available,
       COALESCE(k.is_new, FALSE) AS is_new,
       COALESCE(r.users, 0) AS reach
FROM features.item_knowledge AS k LEFT JOIN reach AS r USING (item_id)
WHERE k.ds = $ds
ORDER BY k.item_id

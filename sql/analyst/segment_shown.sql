-- What a segment (a country, as in features.user_profile.segment) is shown on the newest day: the items most often
-- in its members' lists, the share of members who see each, its average rank, and its rank in the list that
-- unknown visitors of the segment get (recs.default_topk).
-- Parameter: $segment (e.g. 'GB').
WITH day AS (
    SELECT max(ds) AS ds FROM recs.user_topk
), members AS (
    SELECT user_id FROM features.user_profile
    WHERE segment = $segment AND ds = (SELECT max(ds) FROM features.user_profile)
), shown AS (
    SELECT r.item_id, count(*) AS members_shown, avg(r.rank) AS average_rank
    FROM recs.user_topk AS r
    JOIN members USING (user_id)
    WHERE r.ds = (SELECT ds FROM day)
    GROUP BY r.item_id
)
SELECT s.item_id, k.title, k.category, s.members_shown,
       round(s.members_shown / (SELECT count(*) FROM members), 3) AS share_of_members,
       round(s.average_rank, 1) AS average_rank, d.rank AS rank_for_unknown_visitors
FROM shown AS s
LEFT JOIN features.item_knowledge AS k USING (item_id)
LEFT JOIN recs.default_topk AS d
    ON d.item_id = s.item_id AND d.segment = $segment AND d.ds = (SELECT ds FROM day)
ORDER BY s.members_shown DESC, s.average_rank, s.item_id
LIMIT 20;

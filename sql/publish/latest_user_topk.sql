CREATE OR REPLACE VIEW recs.latest_user_topk AS
SELECT * FROM recs.user_topk WHERE ds = (SELECT max(ds) FROM recs.user_topk);

-- Every published score of day $ds with the strategy that produced it.
SELECT coalesce(strategy, 'unknown') AS strategy, score
FROM recs.user_topk
WHERE ds = $ds AND score IS NOT NULL;

-- Holdout metrics of every candidate model per day up to $ds; `served` marks the model that was published.
SELECT ds, model, track, metric, k, value, n_users, served
FROM metrics.offline_eval
WHERE ds <= $ds
ORDER BY ds, model, track, metric;

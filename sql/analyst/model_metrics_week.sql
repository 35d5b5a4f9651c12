-- How a model's holdout metrics moved over the last 7 days up to its newest evaluation: first and last value of
-- the week, the change, the range, and whether it was the served model on any of those days.
-- Parameter: $model (e.g. 'ease'; every candidate is in metrics.offline_eval every day).
WITH newest AS (
    SELECT max(ds) AS ds FROM metrics.offline_eval WHERE model = $model
), week AS (
    SELECT * FROM metrics.offline_eval
    WHERE model = $model AND ds > (SELECT ds FROM newest) - INTERVAL 7 DAY
)
SELECT track, metric, k,
       min(ds) AS first_day, arg_min(value, ds) AS first_value,
       max(ds) AS last_day, arg_max(value, ds) AS last_value,
       arg_max(value, ds) - arg_min(value, ds) AS change,
       min(value) AS lowest, max(value) AS highest, count(DISTINCT ds) AS days, bool_or(served) AS served_some_day
FROM week
GROUP BY track, metric, k
ORDER BY track, metric, k;

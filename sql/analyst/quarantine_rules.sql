-- Which validation rules quarantined rows in partitions dated on or after $since: rows and files per rule, the days
-- it fired, and the newest example of what was wrong (each row is counted once, under the first rule it broke).
-- Parameter: $since (a date, e.g. DATE '2024-01-01').
SELECT kind, rule, count(*) AS rows_quarantined, count(DISTINCT file) AS files, min(dt) AS first_day,
       max(dt) AS last_day, arg_max(detail, dt) AS newest_example
FROM quality.quarantine
WHERE dt >= $since
GROUP BY kind, rule
ORDER BY rows_quarantined DESC, kind, rule;

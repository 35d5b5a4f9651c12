-- Per day up to $ds: rows checked and failed by the validation rules, and how many rules failed.
SELECT ds, max(checked) AS rows_checked, sum(failed) AS failed_checks, count(*) FILTER (WHERE NOT success) AS rules_failed
FROM quality.validation_runs
WHERE ds <= $ds
GROUP BY ds
ORDER BY ds;

-- Quarantined rows of partitions dated on or before $ds, by the first rule they broke.
SELECT kind, rule, count(*) AS quarantined, min(dt) AS first_day, max(dt) AS last_day, any_value(detail) AS example
FROM quality.quarantine
WHERE dt <= $ds
GROUP BY kind, rule
ORDER BY quarantined DESC, kind, rule;

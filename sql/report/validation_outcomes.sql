-- The rules of the newest validation on or before day $ds (a re-run that found nothing new validates nothing).
WITH latest AS (
    SELECT run_id, ds FROM quality.validation_runs WHERE ds <= $ds ORDER BY validated_at DESC, ds DESC LIMIT 1
)
SELECT v.ds, v.run_id, v.kind, v.suite, v.rule, v."column", v.checked, v.failed, v.success, v.examples,
       v.partitions, v.validated_at
FROM quality.validation_runs AS v
JOIN latest USING (run_id, ds)
ORDER BY v.success, v.failed DESC, v.suite, v.rule;

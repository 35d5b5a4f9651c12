-- The newest runs up to day $ds: status, duration, served model and the failure message.
SELECT ds, run_id, status, started_at, finished_at,
       date_diff('second', started_at, finished_at) AS seconds, model, message
FROM ops.pipeline_runs
WHERE ds <= $ds
ORDER BY finished_at DESC
LIMIT 12;

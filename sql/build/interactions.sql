-- User-item interactions before $until: weight = sum of event-type weights, halved every $half_life days of age.
-- n_purchases counts purchase occasions (sessions or invoices), not lines.
SELECT
    user_id, item_id,
    sum(w.weight * pow(0.5, date_diff('second', e.event_ts, $until) / 86400.0 / $half_life))::FLOAT AS weight,
    count(*) AS n_events,
    count(DISTINCT COALESCE(session_id, event_id, CAST(event_ts AS VARCHAR)))
        FILTER (WHERE event_type = 'purchase') AS n_purchases,
    count(*) FILTER (WHERE event_type = 'rating') AS n_ratings,
    sum(quantity) FILTER (WHERE event_type = 'purchase') AS quantity,
    sum(revenue) AS revenue,
    min(event_ts) AS first_ts,
    max(event_ts) AS last_ts,
    max(event_ts) FILTER (WHERE event_type = 'purchase') AS last_purchase_ts
FROM staging.events AS e JOIN staging.event_weights AS w USING (event_type)
WHERE e.event_ts < $until
GROUP BY user_id, item_id
ORDER BY user_id, item_id

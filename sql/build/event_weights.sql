-- staging.event_weights: how much each event type says about a user's interest (from the run's settings).
CREATE OR REPLACE TABLE staging.event_weights AS
SELECT * FROM (VALUES ('view', CAST($w_view AS DOUBLE)), ('click', $w_click), ('add_to_cart', $w_add_to_cart),
                      ('purchase', $w_purchase), ('rating', $w_rating)) AS w(event_type, weight);

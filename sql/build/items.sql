-- staging.items: the catalogue as known on $ds: the latest clean row of each item, and the day it was first seen.
CREATE OR REPLACE TABLE staging.items AS
WITH ranked AS (
    SELECT i.*, row_number() OVER (PARTITION BY item_id ORDER BY dt DESC, _row DESC) AS newest,
           min(dt) OVER (PARTITION BY item_id) AS first_seen
    FROM clean.items AS i
    WHERE i.dt <= $ds
)
SELECT item_id, title, description, brand, category, price, COALESCE(available, TRUE) AS available,
       attributes, image_embedding, first_seen, dt AS updated
FROM ranked
WHERE newest = 1
ORDER BY item_id;

-- What the language-model models read about each item of $ds: the base MiniLM embedding, the text the tuned
-- encoder reads (title, brand, category, description, price band) and the attributes fused in the item tower.
SELECT item_id, text_embedding,
       concat_ws('. ', title, brand, array_to_string(category_path, ' > '), description,
                 'price ' || price_band) AS item_text,
       category, top_category, brand, price_band, image_embedding
FROM features.item_knowledge
WHERE ds = $ds
ORDER BY item_id

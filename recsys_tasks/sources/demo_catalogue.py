"""The demo shop's catalogue and shoppers: categories with their own brands, words and prices (numpy, seeded)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COUNTRIES = (("GB", "DE", "FR", "NL", "IE", "ES", "US"), (0.55, 0.12, 0.1, 0.07, 0.06, 0.05, 0.05))
DEVICES = (("mobile", "desktop", "tablet"), (0.58, 0.34, 0.08))
ITEM_KEYS = (
    "item_id", "title", "description", "brand", "category", "price", "available", "attributes", "image_embedding",
)
EXTRAS = ("Free returns within 30 days.", "Part of the new season range.", "A shop favourite.",
          "Packed in recyclable materials.", "Limited stock.")

# path, median price, log-price spread, days between repeat purchases (0: not a consumable), age restricted,
# then "|"-separated brands, nouns, adjectives, materials, sizes, colours and uses
CATEGORIES = (
    ("Beauty > Skin Care > Serums", 24, 0.45, 35, False, "Lumen Lab|Dewpoint|Kaya Botanics|Nordic Skin",
     "serum|face oil|ampoule|essence", "hydrating|brightening|firming|soothing|overnight",
     "vitamin C|hyaluronic acid|niacinamide|retinol|squalane", "15 ml|30 ml|50 ml", "",
     "for morning and evening routines|for dry and sensitive skin|for a dewy finish"),
    ("Beauty > Hair Care > Shampoo", 9, 0.35, 28, False, "Salt & Sage|Mane Theory|Brightwell",
     "shampoo|conditioner|hair mask|scalp scrub", "volumising|repairing|gentle|clarifying|curl-defining",
     "argan oil|rosemary|coconut|keratin|tea tree", "250 ml|400 ml|1 l", "",
     "for everyday washing|for coloured hair|for fine hair"),
    ("Home > Kitchen > Cookware", 45, 0.55, 0, False, "Forge & Fold|Cucina Nova|Hearthstone",
     "frying pan|saucepan|casserole dish|wok|griddle", "non-stick|heavy-duty|induction-ready|lightweight|classic",
     "cast iron|stainless steel|ceramic|copper|carbon steel", "20 cm|24 cm|28 cm", "black|graphite|red|cream|teal",
     "for everyday cooking|for slow Sunday roasts|for searing and stir-fries"),
    ("Home > Decor > Candles", 18, 0.4, 45, False, "Wick & Ember|Stillroom|Lowlight",
     "scented candle|tealight set|reed diffuser|wax melt", "calming|cosy|fresh|woody|floral",
     "soy wax|beeswax|coconut wax|rapeseed wax", "180 g|300 g|500 g", "white|amber|sage|charcoal",
     "for long evenings in|for the bathroom|as a housewarming gift"),
    ("Fashion > Women > Knitwear", 55, 0.5, 0, False, "Fjord & Field|Marlow|Sable Row|Loomcraft",
     "jumper|cardigan|roll-neck|tank top|scarf", "chunky|fine-knit|oversized|cropped|cable-knit",
     "merino wool|cashmere|organic cotton|alpaca|lambswool", "XS|S|M|L|XL",
     "oatmeal|navy|forest green|camel|black|rust", "for layering|for cold commutes|for weekends away"),
    ("Sports > Running > Shoes", 85, 0.35, 0, False, "Stride|Altus|Peakform",
     "running shoe|trail shoe|racing flat|walking shoe", "cushioned|responsive|waterproof|lightweight|stable",
     "mesh|knit|recycled polyester|Gore-Tex", "UK 5|UK 6|UK 7|UK 8|UK 9|UK 10|UK 11", "white|black|volt|blue|grey",
     "for daily miles|for muddy trails|for race day"),
    ("Grocery > Coffee & Tea", 11, 0.35, 21, False, "Roast Republic|Leafhouse|Daybreak",
     "coffee beans|ground coffee|loose leaf tea|tea bags|cold brew", "single-origin|organic|decaf|smooth|bold",
     "Colombian|Ethiopian|Kenyan|Darjeeling|Assam", "250 g|500 g|1 kg", "",
     "for slow mornings|for the office|for the cafetiere"),
    ("Electronics > Audio > Headphones", 70, 0.7, 0, False, "Sonique|Halcyon|Bassline",
     "wireless earbuds|over-ear headphones|portable speaker|sports earphones",
     "noise-cancelling|wireless|compact|studio|waterproof", "aluminium|matte plastic|vegan leather|fabric",
     "one size", "black|white|silver|midnight blue", "for the commute|for the gym|for long flights"),
    ("Drinks > Wine > Red Wine", 14, 0.5, 30, True, "Château Lune|Vale & Vine|Cordillera",
     "Malbec|Rioja|Pinot Noir|Shiraz|Merlot", "oak-aged|fruity|organic|reserve|light",
     "Mendoza|Rioja Alta|Barossa|Bordeaux|Marlborough", "75 cl|1.5 l", "",
     "for Sunday lunch|for barbecues|to lay down for a year or two"),
)

MEDIAN_PRICE = np.array([c[1] for c in CATEGORIES], float)  # per category
REORDER_DAYS = np.array([c[3] for c in CATEGORIES])  # per category; 0: bought once


@dataclass
class Catalogue:
    """Every item the demo shop will ever sell, and when it launches, changes price or is retired."""

    category: np.ndarray  # int: category index per item
    launch: np.ndarray  # int: day index the item first appears
    price: np.ndarray  # float: launch price
    new_price: np.ndarray  # float: price after its one change
    price_change: np.ndarray  # int: day of the change (days: never)
    retire: np.ndarray  # int: day it becomes unavailable (days: never)
    popularity: np.ndarray  # float: Zipf weight
    rows: list[dict]  # the items partition row of each item, at launch


@dataclass
class Shoppers:
    """The demo shop's customers."""

    join: np.ndarray  # int: day index of their first visit
    taste: np.ndarray  # float [users, categories]: share of sessions per category
    band: np.ndarray  # float: preferred log-price relative to a category's median
    activity: np.ndarray  # float: expected sessions per day
    country: np.ndarray  # str
    device: np.ndarray  # str


def _vocab(c: int, field: int) -> list[str]:
    return [w for w in CATEGORIES[c][field].split("|") if w]


def _pick(rng: np.random.Generator, words: list[str]) -> str | None:
    return words[rng.integers(len(words))] if words else None


def _describe(adjective: str, material: str, noun: str, brand: str, use: str, extra: str) -> str:
    """Return a product blurb: "An oak-aged Mendoza Malbec from Château Lune, ideal for Sunday lunch. ..."."""
    plural = noun.endswith("s") and not noun.endswith("ss")
    article = "" if plural else ("an " if adjective[0] in "aeiou" else "a ")
    text = f"{article}{adjective} {material} {noun} from {brand}, ideal {use}. {extra}"
    return text[0].upper() + text[1:]


def _capitals(words: str) -> str:
    """Return words with initial capitals, keeping the rest as written ("vitamin C" -> "Vitamin C")."""
    return " ".join(w[:1].upper() + w[1:] for w in words.split(" "))


def _shelf_price(price: np.ndarray) -> np.ndarray:
    """Return prices rounded the way shops do: 4.49, 12.99."""
    return np.where(price < 5, np.round(price * 2) / 2 - 0.01, np.round(price) - 0.01).clip(0.99).round(2)


def make_catalogue(rng: np.random.Generator, n_items: int, days: int) -> Catalogue:
    """Return the items, three quarters on sale from the first day and the rest launched later."""
    n_cat = len(CATEGORIES)
    category = rng.choice(n_cat, n_items, p=rng.dirichlet(np.full(n_cat, 4.0)))
    launch = np.where(rng.random(n_items) < 0.75, 0, rng.integers(0, days, n_items))
    order = np.lexsort((rng.random(n_items), launch))  # item ids grow with launch day
    category, launch = category[order], launch[order]
    median = MEDIAN_PRICE[category]
    spread = np.array([c[2] for c in CATEGORIES])[category]
    price = _shelf_price(median * np.exp(spread * rng.standard_normal(n_items)))
    late = launch + 1 < days
    retire = np.where(late & (rng.random(n_items) < 0.04), rng.integers(launch + 1, days + 1), days)
    price_change = np.where(late & (rng.random(n_items) < 0.06), rng.integers(launch + 1, days + 1), days)
    new_price = _shelf_price(price * rng.uniform(0.7, 1.15, n_items))
    popularity = 1.0 / (rng.permutation(n_items) + 1.0) ** 1.05
    centroids = rng.standard_normal((n_cat, 16))
    embeddings = np.round(centroids[category] + 0.4 * rng.standard_normal((n_items, 16)), 4)
    rows = []
    for i in range(n_items):
        c = int(category[i])
        brand, noun, adjective, material, size, colour = (_pick(rng, _vocab(c, f)) for f in range(5, 11))
        title = " ".join([brand, _capitals(f"{adjective} {material} {noun}")] + ([size] if CATEGORIES[c][3] else []))
        use, extra = _pick(rng, _vocab(c, 11)), _pick(rng, list(EXTRAS))
        rows.append({
            "item_id": f"P{i + 1:05d}", "title": title, "brand": brand, "category": CATEGORIES[c][0],
            "description": _describe(adjective, material, noun, brand, use, extra),
            "attributes": {"colour": colour, "size": size, "material": material, "age_restricted": CATEGORIES[c][4]},
            "image_embedding": embeddings[i].tolist(),
        })
    return Catalogue(category, launch, price, new_price, price_change, retire, popularity, rows)


def make_shoppers(rng: np.random.Generator, n_users: int, days: int) -> Shoppers:
    """Return the shoppers, three fifths there on the first day and the rest joining later."""
    join = np.sort(np.where(rng.random(n_users) < 0.6, 0, rng.integers(0, days, n_users)))
    taste = rng.dirichlet(np.full(len(CATEGORIES), 0.35), n_users)
    # about 0.42 sessions a day makes ~3,400 events a day for 2,000 shoppers
    activity = rng.gamma(0.8, 0.42 / 0.8, n_users)
    country = np.array(COUNTRIES[0])[rng.choice(len(COUNTRIES[0]), n_users, p=COUNTRIES[1])]
    device = np.array(DEVICES[0])[rng.choice(len(DEVICES[0]), n_users, p=DEVICES[1])]
    return Shoppers(join, taste, rng.normal(0.0, 0.35, n_users), activity, country, device)


def search_query(rng: np.random.Generator, c: int) -> str:
    """Return a search a shopper might type for category `c`."""
    noun, adjective, material, brand = (_pick(rng, _vocab(c, f)) for f in (6, 7, 8, 5))
    forms = (f"{adjective} {noun}", f"{material} {noun}", f"{brand} {noun}", noun)
    return forms[rng.integers(len(forms))].lower()

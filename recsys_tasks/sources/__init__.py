"""Sources of behaviour logs and catalogues, each read as dated partitions of the input contract."""
from __future__ import annotations

from pathlib import Path

from recsys_tasks.sources.amazon_reviews import AmazonReviewsSource
from recsys_tasks.sources.base import EVENT_COLUMNS, ITEM_COLUMNS, REQUIRED, Partition, RawBatch, Source
from recsys_tasks.sources.landing import LandingSource
from recsys_tasks.sources.online_retail import OnlineRetailSource

__all__ = [
    "EVENT_COLUMNS", "ITEM_COLUMNS", "REQUIRED", "Partition", "RawBatch", "Source", "get_source",
    "LandingSource", "OnlineRetailSource", "AmazonReviewsSource",
]


def get_source(name: str, landing: Path) -> Source:
    """Return the reader for source `name` over the landing directory."""
    if name in ("landing", "demo"):
        return LandingSource(Path(landing), name=name)
    if name == "online-retail":
        return OnlineRetailSource(Path(landing))
    if name == "amazon-reviews":
        return AmazonReviewsSource(Path(landing))
    raise ValueError(f"unknown source {name!r}; expected landing, demo, online-retail or amazon-reviews")

"""Recommendation models behind one interface, and a registry to build or load them by name."""
from __future__ import annotations

import json
from pathlib import Path

from recsys_tasks.models.base import Evidence, Recommender, TrainingData
from recsys_tasks.models.ease import EASE
from recsys_tasks.models.itemknn import ItemKNN
from recsys_tasks.models.popularity import Popularity, SegmentPopularity
from recsys_tasks.models.repeat import Repeat
from recsys_tasks.models.topk import top_k

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (Popularity, SegmentPopularity, Repeat, ItemKNN, EASE)
}


def build_model(name: str, **params) -> Recommender:
    """Return an unfitted model by registry name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name](**params)


def load_model(directory: Path) -> Recommender:
    """Return the model saved in directory, whatever its kind."""
    name = json.loads((Path(directory) / "model.json").read_text())["name"]
    if name not in MODELS:
        raise ValueError(f"{directory} holds an unknown model {name!r}")
    return MODELS[name].load(directory)


__all__ = [
    "EASE",
    "MODELS",
    "Evidence",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "Repeat",
    "SegmentPopularity",
    "TrainingData",
    "build_model",
    "load_model",
    "top_k",
]

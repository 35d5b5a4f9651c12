"""Recommendation models behind one interface, and a registry to build or load them by name."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from recsys_tasks.models.base import Evidence, Recommender, TrainingData
from recsys_tasks.models.blend import Blend
from recsys_tasks.models.ease import EASE
from recsys_tasks.models.itemknn import ItemKNN
from recsys_tasks.models.next_purchase import NextPurchaseGBDT
from recsys_tasks.models.popularity import Popularity, SegmentPopularity
from recsys_tasks.models.repeat import Repeat
from recsys_tasks.models.topk import top_k

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (Popularity, SegmentPopularity, Repeat, ItemKNN, EASE, NextPurchaseGBDT)
}

# The language-model models import torch: loaded on first use, so the baselines' tasks stay light.
LANGUAGE_MODELS: dict[str, str] = {
    "teacher": "recsys_tasks.models.teacher:Teacher",
    "student": "recsys_tasks.models.student:Student",
}


# Made of other models, never a candidate by itself: the nightly evaluation builds it from the best two.
COMBINED: dict[str, type[Recommender]] = {Blend.name: Blend}


def model_names() -> list[str]:
    """Return every registry name: the baselines, then the language-model models."""
    return [*MODELS, *LANGUAGE_MODELS]


def model_class(name: str) -> type[Recommender]:
    """Return the class behind a registry name (or a combined model's)."""
    if name in MODELS:
        return MODELS[name]
    if name in COMBINED:
        return COMBINED[name]
    if name in LANGUAGE_MODELS:
        module, cls = LANGUAGE_MODELS[name].split(":")
        return getattr(importlib.import_module(module), cls)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(model_names())}")


def build_model(name: str, **params) -> Recommender:
    """Return an unfitted model by registry name."""
    return model_class(name)(**params)


def fit_order(names) -> list[str]:
    """Return model names in fitting order: the teacher before the student that distils it."""
    return sorted(names, key=lambda m: m == "student")


def build_distilling(name: str, fitted: dict[str, Recommender], **params) -> Recommender:
    """Return an unfitted model by registry name; a student distils the teacher in `fitted`, when there is one,
    instead of fitting a second."""
    model = build_model(name, **params)
    if name == "student" and "teacher" in fitted:
        model.with_teacher(fitted["teacher"])
    return model


def load_model(directory: Path) -> Recommender:
    """Return the model saved in directory, whatever its kind."""
    name = json.loads((Path(directory) / "model.json").read_text())["name"]
    if name not in model_names() and name not in COMBINED:
        raise ValueError(f"{directory} holds an unknown model {name!r}")
    return model_class(name).load(directory)


__all__ = [
    "COMBINED",
    "Blend",
    "EASE",
    "LANGUAGE_MODELS",
    "MODELS",
    "NextPurchaseGBDT",
    "Evidence",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "Repeat",
    "SegmentPopularity",
    "TrainingData",
    "build_distilling",
    "build_model",
    "fit_order",
    "load_model",
    "model_class",
    "model_names",
    "top_k",
]

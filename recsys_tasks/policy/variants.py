"""A/B variants: arms with traffic shares and knob overrides; users bucketed by a salted hash, stable across days."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace

import numpy as np

from recsys_tasks.config import Settings


@dataclass(frozen=True)
class Knobs:
    """The policy knobs one arm runs with (defaults from the settings)."""

    policy: bool = True  # bool: recall, rank and re-rank around the model; False = the bare served model's top-K
    model: str | None = None  # str: the model the arm serves; None = the model the evaluate stage chose
    recall_per_source: int = 100
    mmr_lambda: float = 0.9
    mmr_category_weight: float = 0.5
    max_per_brand: int = 10
    exploration_share: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> "Knobs":
        """Return the run's default knobs."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)})


@dataclass(frozen=True)
class Variant:
    """One arm of the experiment."""

    name: str
    share: float
    knobs: Knobs


KNOB_NAMES = {f.name for f in fields(Knobs)}


def parse_variants(spec, settings: Settings) -> list[Variant]:
    """Return the arms of a variants spec ({name: {"share": s, knob: value}}, as JSON text or a dict)."""
    spec = json.loads(spec) if isinstance(spec, str) else spec
    if not isinstance(spec, dict) or not spec:
        raise ValueError("variants must be a non-empty object: {name: {\"share\": 0.5, knob: value, ...}}")
    base = Knobs.from_settings(settings)
    arms = []
    for name, arm in spec.items():
        arm = dict(arm or {})
        share = float(arm.pop("share", 0.0))
        unknown = set(arm) - KNOB_NAMES
        if unknown:
            raise ValueError(f"variant {name!r}: unknown knobs {sorted(unknown)}; known: {sorted(KNOB_NAMES)}")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"variant {name!r}: share {share} is not in [0, 1]")
        knobs = replace(base, **{k: type(getattr(base, k))(v) if getattr(base, k) is not None else v
                                 for k, v in arm.items()})
        arms.append(Variant(str(name), share, knobs))
    total = sum(a.share for a in arms)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"variant shares add up to {total}, not 1")
    return arms


def bucket_position(user_ids: list[str], salt: str) -> np.ndarray:
    """Return each user's fixed point in [0, 1): the first 8 bytes of sha256(salt:user_id)."""
    out = np.empty(len(user_ids), dtype=np.float64)
    for i, user in enumerate(user_ids):
        digest = hashlib.sha256(f"{salt}:{user}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2.0**64
    return out


def assign(user_ids: list[str], variants: list[Variant], salt: str) -> np.ndarray:
    """Return the variant name of each user: arms own consecutive slices of [0, 1) in the order given."""
    position = bucket_position(user_ids, salt)
    edges = np.cumsum([v.share for v in variants])
    edges[-1] = 1.0  # rounding never leaves a user outside every arm
    names = np.asarray([v.name for v in variants], dtype=object)
    return names[np.searchsorted(edges, position, side="right").clip(0, len(variants) - 1)]

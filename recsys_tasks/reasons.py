"""Turn a model's evidence into the plain words a shopper reads next to a recommendation."""
from __future__ import annotations


def _weeks(days: int) -> str:
    return f"{days} days" if days < 14 else f"{round(days / 7)} weeks"


def reason_text(evidence, titles: list[str], bought_row) -> str:
    """Return a human-readable reason citing the evidence (titles indexed like the model's items)."""
    s = evidence.strategy
    if s == "repeat" and evidence.count:
        times = "once" if evidence.count == 1 else f"{evidence.count} times"
        when = f", last {_weeks(evidence.days_since)} ago" if evidence.days_since is not None else ""
        return f"Buy it again: you bought this {times}{when}"
    if evidence.because_item is not None and evidence.because_item >= 0:
        verb = "bought" if evidence.because_item in set(bought_row.indices) else "looked at"
        return f"Because you {verb} {titles[evidence.because_item]}"
    if s == "segment_popularity" and evidence.segment and evidence.segment != "unknown":
        return f"Popular with shoppers in {evidence.segment}"
    if s == "segment_popularity":
        return "Popular with shoppers"
    return "Popular with shoppers right now"

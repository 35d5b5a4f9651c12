"""Turn evidence into the plain words a shopper reads next to a recommendation."""
from __future__ import annotations

POPULAR = "Popular with shoppers right now"
LOOKED_AT = "You looked at this recently"


def _weeks(days: int) -> str:
    return f"{days} days" if days < 14 else f"{round(days / 7)} weeks"


def reason_text(evidence, titles: list[str], bought_row) -> str:
    """Return a human-readable reason citing a model's evidence (titles indexed like the model's items)."""
    s = evidence.strategy
    if s == "repeat" and evidence.count:
        times = "once" if evidence.count == 1 else f"{evidence.count} times"
        when = f", last {_weeks(evidence.days_since)} ago" if evidence.days_since is not None else ""
        return f"Buy it again: you bought this {times}{when}"
    if s == "new_item" and evidence.because_item is not None and evidence.because_item >= 0:
        return new_item_text(titles[evidence.because_item], evidence.because_item in set(bought_row.indices))
    if evidence.because_item is not None and evidence.because_item >= 0:
        return because_text(titles[evidence.because_item], evidence.because_item in set(bought_row.indices))
    if s == "segment_popularity":
        return segment_text(evidence.segment)
    return POPULAR


def because_text(title: str, bought: bool) -> str:
    """Return "Because you bought <title>" (or "looked at" when the user only browsed it)."""
    return f"Because you {'bought' if bought else 'looked at'} {title}"


def bought_with_text(title: str, bought: bool) -> str:
    """Return "Often bought with <title>" for an item the user bought, else the browsing form."""
    return f"Often bought with {title}" if bought else because_text(title, False)


def buy_again_text(purchase_days: int, cycle_days: float | None, days_since: int | None) -> str:
    """Return "Buy it again: you order this about every N weeks" (or when it was last bought, for one purchase)."""
    if cycle_days is not None and purchase_days >= 2:
        return f"Buy it again: you order this about every {_weeks(max(1, int(round(cycle_days))))}"
    times = "once" if purchase_days <= 1 else f"{purchase_days} times"
    when = f", last {_weeks(days_since)} ago" if days_since is not None else ""
    return f"Buy it again: you bought this {times}{when}"


def trending_text(category: str | None) -> str:
    """Return "Popular in <category> this week" ("Popular this week" without a category)."""
    if category and category != "uncategorised":
        return f"Popular in {category} this week"
    return "Popular this week"


def segment_text(segment: str | None) -> str:
    """Return "Popular with shoppers in <segment>" ("Popular with shoppers" when the segment is unknown)."""
    if segment and segment != "unknown":
        return f"Popular with shoppers in {segment}"
    return "Popular with shoppers"


def new_item_text(title: str, bought: bool) -> str:
    """Return the reason of an exploration slot: a new item close in text to one the user bought or browsed."""
    return f"New in: like {title}, which you {'bought' if bought else 'looked at'}"

"""The recommendation policy around the served model: recall, filter, rank, re-rank, explain, and learn from lists.

candidates (recall sources and their features) -> rules (business rules kept as data) -> ranker (one scoring
function learned on the time-based holdout) -> rerank (MMR diversity, brand cap, exploration slots) -> explain
(plain words from the evidence). variants buckets users into A/B arms; feedback and health read the published
lists back every night.
"""

"""Every default of the pipeline, in one place.

Override order (highest first): DAG run parameters > environment variables (RECSYS_<NAME>) > these defaults.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# every process that may load the bundled MiniLM: never reach a hub, and no tqdm bars flooding the task logs
MODEL_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}

# Sources the ingest stage understands; "landing" and "demo" both read the contract layout.
SOURCES = ("landing", "demo", "online-retail", "amazon-reviews")
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating")
PRECISIONS = ("auto", "bf16", "fp32")  # lm_precision: what the language models compute in (models/device.py)


@dataclass(frozen=True)
class Settings:
    recsys_home: Path = REPO_ROOT / "data"  # Path: where warehouse/, models/, reports/, landing/ live
    source: str = "demo"  # str: one of SOURCES
    landing: Path | None = None  # Path: landing directory; None means $RECSYS_HOME/landing/demo for the demo
    top_k: int = 50  # int: items per user in recs.user_topk
    similar_k: int = 20  # int: neighbours per item and kind in recs.item_similar
    holdout_days: int = 14  # int: days before D held out to choose the served model
    eval_k: int = 20  # int: cut-off of the offline metrics
    selection_metric: str = "ndcg"  # str: metric (ndcg | recall) on the "all" track that picks the served model
    models: tuple[str, ...] = ("popularity", "segment_popularity", "repeat", "itemknn", "ease", "gbdt", "teacher",
                               "student")  # tuple: candidate models
    max_bad_row_share: float = 0.10  # float: a file whose quarantined share is above this fails the run
    min_rows_for_share: int = 20  # int: files with fewer rows are never failed on the share alone
    retention_days: int = 30  # int: days of recs/metrics history kept in the analysts' database
    max_quantity: float = 10_000  # float: largest believable quantity on one event
    max_price: float = 100_000  # float: largest believable unit price
    recency_half_life_days: float = 30.0  # float: an interaction's weight halves every this many days
    history_window_days: int = 365  # int: interactions older than this are ignored
    session_gap_minutes: int = 30  # int: a pause this long starts a new session when session_id is absent
    ease_lambda: float = 500.0  # float: EASE L2 regularisation
    ease_max_items: int = 20_000  # int: EASE is fit on at most this many most popular items (O(n^2) memory)
    knn_neighbours: int = 1000  # int: ItemKNN keeps this many neighbours per item (100 costs 0.016 Recall@20 on UCI)
    popularity_days: int = 30  # int: window of "recent popularity"
    gbdt_horizon_days: float = 30.0  # float: the gbdt model predicts the purchases of the next N days
    gbdt_cutoffs: int = 8  # int: past cut-offs (a week apart) whose next N days the gbdt model learns from
    gbdt_sources: str = "ease,new"  # str: gbdt candidates beyond own items: ease, next, text, new (next+text: 2x the time)
    gbdt_negative_share: float = 0.3  # float: share of not-bought pairs gbdt learns on, weighted back (0.3: half
    # the fit time of 1.0 on UCI, NDCG@20 0.4003 vs 0.4010 on validation)
    blend_weights: str = "0.1,0.3,0.5,0.7,0.9"  # str: weights of the best candidate tried in a blend with the
    # second best on the holdout (log-probabilities added; served only when it beats both); "" never blends
    encoder_batch_size: int = 128  # int: items per MiniLM forward pass
    history_embedding_items: int = 20  # int: last N items averaged into a user's history embedding
    weight_view: float = 1.0  # float: interaction weight of a view
    weight_click: float = 2.0  # float: interaction weight of a click
    weight_add_to_cart: float = 4.0  # float: interaction weight of an add to cart
    weight_purchase: float = 8.0  # float: interaction weight of a purchase
    weight_rating: float = 5.0  # float: interaction weight of a rating (any value)
    # the recommendation policy (recsys_tasks/policy; README "Recommendation policy" says what each knob trades)
    recall_per_source: int = 100  # int: candidates each recall source offers per user
    recent_items: int = 20  # int: a user's last N items whose behaviour and text neighbours are recalled
    neighbour_k: int = 50  # int: neighbours per item walked by the behaviour and text sources
    ann_min_items: int = 50_000  # int: catalogues this large search text neighbours with an IVF index, smaller exactly
    ranker_max_users: int = 3000  # int: holdout users (a seeded sample) the scoring function is learned on
    mmr_lambda: float = 0.9  # float: MMR weight of relevance against diversity (1 = no diversity re-ranking)
    mmr_category_weight: float = 0.5  # float: share of "same category" (the rest: text cosine) in MMR similarity
    max_per_brand: int = 10  # int: at most this many items of one brand in a list (0 = no cap)
    exploration_share: float = 0.05  # float: share of list slots given to new items found by text (0 = none)
    new_item_days: int = 14  # int: an item first seen this many days ago or less is new (cold)
    no_rebuy_days: int = 180  # int: an item bought this recently is left out unless its category is re-purchased
    repurchase_min_share: float = 0.05  # float: a category re-purchases when this share of its (buyer, item) pairs repeat
    restricted_min_age: int = 18  # int: minimum age for items whose attributes say age_restricted
    variants: str = '{"control": {"share": 1.0}}'  # str | dict (JSON): A/B arm -> traffic share and knob overrides
    variant_salt: str = "recsys-ab-1"  # str: salt of the user bucketing hash (change it to re-draw every user)
    feedback_days: int = 28  # int: lists published up to this many days before D are scored by feedback
    feedback_bootstrap: int = 200  # int: bootstrap resamples behind each feedback confidence interval
    # the language-model models (recsys_tasks/models/teacher.py, student.py, text_tuning.py; README "Language models")
    lm_device: str = "auto"  # str: torch device of teacher, student and text tuning: auto (CUDA when present) | cpu | cuda
    lm_precision: str = "auto"  # str: auto (bf16 on a GPU that supports it, else fp32) | bf16 (CPUs with AMX too) | fp32
    lm_dim: int = 64  # int: teacher width (item and history vectors)
    lm_layers: int = 2  # int: teacher transformer blocks
    lm_heads: int = 2  # int: teacher attention heads
    lm_max_len: int = 50  # int: newest events per user the teacher and the student read
    lm_target_window: int = 20  # int: each history position learns at most this many next items
    lm_horizon_days: float = 30.0  # float: with time stamps, those items are the ones of the next N days (0: next events)
    lm_epochs: int = 10  # int: teacher passes over the histories
    lm_prior_weight: float = 0.5  # float: weight of the item-item (EASE) prior added to the teacher's score (0: none)
    lm_full_softmax_max_items: int = 50_000  # int: larger catalogues train with a sampled softmax (bench/speed.py)
    lm_time_budget_s: float = 60.0  # float: wall-clock cap of each teacher / student fit (0: the epochs alone decide)
    lm_processes: int = 1  # int: torchrun processes (one per GPU) tuning the text and fitting teacher and student
    # data-parallel (1: none; 0: one per visible GPU, none without)
    student_dim: int = 32  # int: student vector width; scoring costs dim multiply-adds per user and item
    student_epochs: int = 10  # int: student passes over the histories
    student_distill_top_n: int = 50  # int: length of the teacher's list per user that the student learns
    student_prior_rank: int = 64  # int: the teacher's item-item prior carried by the student at this rank (0: none)
    student_prior_boost: float = 1.0  # float: the carried prior served at this multiple of its learned weight
    text_tuning_max_steps: int = 200  # int: contrastive MiniLM steps per night (0: the base embeddings are used)
    text_tuning_time_budget_s: float = 30.0  # float: wall-clock cap of the nightly tuning (0: the steps alone decide)
    text_tuning_min_pairs: int = 5_000  # int: fewer behaviour pairs than this keep the base MiniLM (too little signal)
    text_tuning_batch_size: int = 32  # int: pairs per tuning step on the CPU (256 on CUDA)
    text_tuning_layers: int = 2  # int: top MiniLM layers tuned; the lower ones stay frozen
    text_gate_margin_se: float = 1.0  # float: the tuned text is used when its exam gain exceeds this many standard
    # errors of the per-shopper gain (0: any gain; higher: the base MiniLM until the tuned one is clearly better)
    extra: dict = field(default_factory=dict)  # dict: source-specific knobs

    @property
    def warehouse_dir(self) -> Path:
        return self.recsys_home / "warehouse"

    @property
    def work_db(self) -> Path:
        """The pipeline's private DuckDB file (one writer: the running task)."""
        return self.warehouse_dir / "work.duckdb"

    @property
    def analytics_db(self) -> Path:
        """The analysts' DuckDB file, replaced atomically by publish."""
        return self.warehouse_dir / "analytics.duckdb"

    @property
    def models_dir(self) -> Path:
        return self.recsys_home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.recsys_home / "reports"

    @property
    def landing_path(self) -> Path:
        if self.landing is not None:
            return Path(self.landing)
        return self.recsys_home / "landing" / "demo"

    def event_weights(self) -> dict[str, float]:
        return {t: getattr(self, f"weight_{t}") for t in EVENT_TYPES}


# A source's own defaults, applied before the environment and run parameters.
SOURCE_DEFAULTS: dict[str, dict] = {
    # A quarter of the UCI lines are guest checkouts without a customer (up to 88% on some days) and ~2% are
    # cancellations: both are quarantined by rule, so only a file that is (nearly) all bad fails the run.
    "online-retail": {"max_bad_row_share": 0.95, "holdout_days": 30},
    # reviews are sparse and span two decades: look far back
    "amazon-reviews": {"holdout_days": 365, "history_window_days": 9000, "popularity_days": 365},
}


def _coerce(name: str, raw: object, current: object):
    if raw is None:
        return None
    if name in ("recsys_home", "landing"):
        return Path(str(raw)).expanduser().resolve()
    if name == "models":
        return tuple(raw) if isinstance(raw, (list, tuple)) else tuple(s.strip() for s in str(raw).split(",") if s.strip())
    if isinstance(current, bool):
        return str(raw).lower() in ("1", "true", "yes")
    if isinstance(current, int) and not isinstance(current, bool):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    return raw


def env_name(name: str) -> str:
    """Return the environment variable that overrides a setting (recsys_home -> RECSYS_HOME)."""
    return name.upper() if name.startswith("recsys_") else f"RECSYS_{name.upper()}"


def load_settings(params: dict | None = None, environ: dict | None = None) -> Settings:
    """Return settings: defaults < source defaults < RECSYS_* environment < run parameters."""
    environ = os.environ if environ is None else environ
    params = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
    base = Settings()
    names = {f.name for f in fields(Settings)} - {"extra"}
    overrides: dict = {}
    for name in names:
        env = environ.get(env_name(name))
        if env not in (None, ""):
            overrides[name] = _coerce(name, env, getattr(base, name))
    for name, value in params.items():
        if name in names:
            overrides[name] = _coerce(name, value, getattr(base, name))
    source = overrides.get("source", base.source)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if overrides.get("lm_processes", base.lm_processes) < 0:
        raise ValueError(f"lm_processes must be 0 (one per GPU) or more, not {overrides['lm_processes']!r}")
    precision = overrides.get("lm_precision", base.lm_precision)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown lm_precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    merged = {**{k: _coerce(k, v, getattr(base, k)) for k, v in SOURCE_DEFAULTS.get(source, {}).items()}}
    # environment and run parameters beat the source defaults
    merged.update(overrides)
    return replace(base, **merged)

"""bench.quality's own choices, which decide what quality.json reports: the blend's recipe, the served model, merges."""
import pytest

from bench.fits import BLEND_WEIGHTS, STUDENT_PRIOR_BOOSTS, blend_records, carried_prior_boost
from bench.quality import merge_records, served_records
from recsys_tasks.models import Blend, build_model
from tests.unit.test_next_purchase import shop
from tests.unit.test_student import small_student
from tests.unit.test_teacher import chain_data, small_teacher


def rec(dataset, protocol, split, track, model, value, **extra):
    return {"dataset": dataset, "protocol": protocol, "split": split, "track": track, "model": model,
            "metric": "ndcg", "k": 20, "value": value, "n_users": 1, **extra}


@pytest.fixture(scope="module")
def fitted():
    data = shop()
    return {"ease": build_model("ease", lam=10.0).fit(data), "repeat": build_model("repeat").fit(data),
            "popularity": build_model("popularity").fit(data)}


def test_blend_records_pick_the_two_best_fitted_and_the_weight_validation_likes_then_reuse_it_on_test(fitted):
    valid = [rec("online-retail", "B", "valid", "all", "repeat", 0.30), rec("online-retail", "B", "valid", "all",
             "ease", 0.20), rec("online-retail", "B", "valid", "all", "popularity", 0.10),
             rec("online-retail", "B", "valid", "all", "itemknn", 0.50),  # a reference row, not fitted: no part
             rec("online-retail", "B", "valid", "new", "popularity", 0.90),  # another track: not the selection's
             rec("online-retail", "B", "test", "all", "popularity", 0.90)]  # test never picks
    seen = []

    def evaluate(name, blend, split="valid"):
        assert name == "blend" and isinstance(blend, Blend)
        seen.append((split, [m.name for m in blend.models], round(blend.weights[0], 6)))
        first = blend.weights[0]  # the best candidate's share; this stand-in metric peaks at 0.7
        return [rec("online-retail", "B", split, "all", name, 0.4 - (first - 0.7) ** 2)]

    chosen = {}
    rows = blend_records("online-retail", "valid", fitted, valid, evaluate, chosen)
    recipe = chosen["online-retail"]
    assert recipe["parts"] == ["repeat", "ease"] and recipe["weight"] == 0.7
    assert [w for _, _, w in seen] == list(BLEND_WEIGHTS) and set(recipe["valid"]) == {f"{w:g}" for w in BLEND_WEIGHTS}
    assert rows[0]["value"] == pytest.approx(0.4) and rows[0]["blend"] == recipe

    seen.clear()
    rows = blend_records("online-retail", "test", fitted, [], lambda n, b: evaluate(n, b, "test"), chosen)
    assert seen == [("test", ["repeat", "ease"], 0.7)] and rows[0]["split"] == "test"


def test_carried_prior_boost_keeps_the_most_of_the_teacher_on_the_worse_track_then_reuses_it_on_test():
    chain = chain_data()
    teacher = small_teacher(epochs=2, prior_weight=1.0, prior_lambda=5.0).fit(chain)
    student = small_student(epochs=2, prior_rank=4).with_teacher(teacher).fit(chain)
    teacher_rows = [rec("online-retail", "B", "valid", "all", "teacher", 0.30),
                    rec("online-retail", "B", "valid", "new", "teacher", 0.10)]
    seen = []

    def evaluate(model):  # stand-in metric: the boost trades the all track for the new one
        seen.append(model.prior_boost)
        return [rec("online-retail", "B", "valid", "all", "student", 0.30 - 0.02 * model.prior_boost),
                rec("online-retail", "B", "valid", "new", "student", 0.05 + 0.02 * model.prior_boost)]

    chosen = {}
    report = carried_prior_boost("B", student, teacher_rows, evaluate, chosen)
    # worst-track shares: x1 0.70, x1.5 0.80, x2 0.867 (all 0.26 / 0.30), x3 0.80 (all 0.24 / 0.30)
    assert seen == list(STUDENT_PRIOR_BOOSTS) and chosen["B-student-prior-boost"] == 2.0
    assert student.prior_boost == 2.0 and report["boost"] == 2.0 and report["prior_rank"] == 4
    assert report["worst_track_share_on_validation"]["3"] == pytest.approx(0.8)

    seen.clear()
    student.set_prior_boost(1.0)
    assert carried_prior_boost("B", student, teacher_rows, evaluate, chosen)["boost"] == 2.0
    assert seen == [] and student.prior_boost == 2.0  # test: the boost validation chose, nothing re-picked


def test_quality_merge_keeps_the_parts_not_redone_and_drops_served():
    earlier = [rec("online-retail", "B", "valid", "all", "gbdt", 0.40),
               rec("online-retail", "B", "test", "all", "gbdt", 0.34),
               rec("online-retail", "B", "valid", "all", "repeat", 0.38, reference=0.38),
               rec("amazon-scientific", "A", "valid", "masked", "gbdt", 0.10),
               rec("amazon-scientific", "A", "test", "cold", "teacher", 0.01),
               rec("amazon-scientific", "A", "test", "cold", "gbdt", 0.04),
               rec("online-retail", "B", "test", "all", "served", 0.34, served_model="gbdt")]
    fresh = [rec("online-retail", "B", "valid", "all", "gbdt", 0.37),
             rec("online-retail", "B", "test", "all", "gbdt", 0.35)]
    merged = merge_records(earlier, fresh)
    assert [r["value"] for r in merged if r["model"] == "gbdt" and r["dataset"] == "online-retail"] == [0.37, 0.35]
    assert any(r.get("reference") for r in merged) and any(r["track"] == "cold" for r in merged)
    assert not any(r["model"] == "served" for r in merged)
    # repeat (0.38) now beats the redone gbdt (0.37) on validation: served follows
    served = [r for r in served_records(merged) if r["dataset"] == "online-retail"]
    assert {r["served_model"] for r in served} == {"repeat"}
    # the served model's cold-start items are reported next to its warm rows
    cold = [r for r in served_records(merged) if r["track"] == "cold"]
    assert [(r["served_model"], r["value"]) for r in cold] == [("gbdt", 0.04)]


def test_served_is_never_a_chance_row_nor_picked_on_test():
    records = [rec("amazon-scientific", "A", "valid", "masked", "chance", 0.9),  # a yardstick, not a candidate
               rec("amazon-scientific", "A", "valid", "masked", "teacher", 0.09),
               rec("amazon-scientific", "A", "valid", "masked", "ease", 0.08),
               rec("amazon-scientific", "A", "test", "masked", "teacher", 0.05),
               rec("amazon-scientific", "A", "test", "masked", "ease", 0.07)]
    served = served_records(records)
    assert {r["served_model"] for r in served} == {"teacher"}
    assert [r["value"] for r in served if r["split"] == "test"] == [0.05]

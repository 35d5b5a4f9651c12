"""Reasons are plain words built from the evidence a model gives."""
import scipy.sparse as sp

from recsys_tasks.models.base import Evidence
from recsys_tasks.reasons import reason_text

TITLES = ["RED MUG", "BLUE MUG", "TEA TOWEL"]
BOUGHT = sp.csr_matrix([[1, 0, 0]], dtype="float32")[0]


def test_buy_it_again_gives_count_and_age_in_weeks():
    assert reason_text(Evidence("repeat", because_item=0, count=3, days_since=21), TITLES, BOUGHT) == \
        "Buy it again: you bought this 3 times, last 3 weeks ago"
    assert reason_text(Evidence("repeat", because_item=0, count=1, days_since=2), TITLES, BOUGHT) == \
        "Buy it again: you bought this once, last 2 days ago"


def test_because_names_the_history_item_and_what_the_user_did_with_it():
    assert reason_text(Evidence("itemknn", because_item=0), TITLES, BOUGHT) == "Because you bought RED MUG"
    assert reason_text(Evidence("ease", because_item=2), TITLES, BOUGHT) == "Because you looked at TEA TOWEL"


def test_popularity_reasons_name_the_segment_when_there_is_one():
    assert reason_text(Evidence("segment_popularity", segment="France"), TITLES, BOUGHT) == \
        "Popular with shoppers in France"
    assert reason_text(Evidence("popularity"), TITLES, BOUGHT) == "Popular with shoppers right now"
    assert reason_text(Evidence("segment_popularity", segment="unknown"), TITLES, BOUGHT) == "Popular with shoppers"


def test_a_new_item_is_introduced_by_the_history_item_its_text_is_like():
    assert reason_text(Evidence("new_item", because_item=0), TITLES, BOUGHT) == \
        "New in: like RED MUG, which you bought"
    assert reason_text(Evidence("new_item", because_item=2), TITLES, BOUGHT) == \
        "New in: like TEA TOWEL, which you looked at"

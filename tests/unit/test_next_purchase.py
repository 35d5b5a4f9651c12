"""The gbdt next-purchase model on a small shop with a planted buying rhythm."""
import datetime as dt

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_tasks.models import NextPurchaseGBDT, TrainingData, load_model
from recsys_tasks.models.next_purchase_features import FEATURES, Events, pair_rows
from recsys_tasks.models.sequences import TimedTrainingData

AS_OF = dt.date(2024, 6, 1)
N_USERS, N_ITEMS, STAPLES = 80, 30, 5


def shop(days: float = 150.0, seed: int = 0) -> TimedTrainingData:
    """Every user restocks one staple item (user % 5) every 10 days and buys random other items now and then."""
    rng = np.random.default_rng(seed)
    sequences, ages = [], []
    for u in range(N_USERS):
        events = [(a, u % STAPLES) for a in np.arange(3.0 + u % 7, days, 10.0)]
        events += [(float(rng.uniform(0.5, days)), int(rng.integers(STAPLES, N_ITEMS))) for _ in range(12)]
        events.sort(key=lambda e: -e[0])  # oldest first
        sequences.append(np.array([i for _, i in events], dtype=np.int64))
        ages.append(np.array([a for a, _ in events], dtype=np.float32))
    purchases = sp.lil_matrix((N_USERS, N_ITEMS), dtype=np.float32)
    for u, seq in enumerate(sequences):
        for i in seq:
            purchases[u, i] += 1
    purchases = purchases.tocsr()
    recent = np.bincount(np.concatenate(sequences), minlength=N_ITEMS).astype(float)
    text = rng.normal(size=(N_ITEMS, 8)).astype(np.float32)
    return TimedTrainingData(
        users=[f"u{u}" for u in range(N_USERS)], items=[f"i{i}" for i in range(N_ITEMS)],
        interactions=purchases, purchases=purchases, last_purchase_age_days=None, recent_popularity=recent,
        user_segment=np.array([""] * N_USERS), as_of=AS_OF, item_text_embedding=text,
        user_sequences=sequences, user_sequence_ages=ages)


SMALL = {"cutoffs": 4, "max_iter": 30, "min_samples_leaf": 5, "n_related": 5, "n_popular": 3}


def test_learns_the_buying_rhythm_and_puts_the_staple_first():
    data = shop()
    model = NextPurchaseGBDT(**SMALL).fit(data)
    assert model.fit_report["fitted"] and model.fit_report["cutoffs_days_before"] == [30.0, 37.0, 44.0, 51.0]
    scores = model.score(np.arange(N_USERS))
    assert scores.shape == (N_USERS, N_ITEMS) and np.isfinite(scores).all()
    staple_first = scores.argmax(axis=1) == np.arange(N_USERS) % STAPLES
    assert staple_first.mean() >= 0.9
    # every candidate (the user's own items among them) ranks above every non-candidate
    bought = data.purchases.toarray() > 0
    assert (scores[bought] >= 1.0).all() and (scores[scores < 1.0] < 1.0).all()


def test_a_past_cut_off_never_sees_the_events_after_it():
    data = shop()
    events = Events.from_sequences(data.user_sequences, data.user_sequence_ages, N_ITEMS)
    later = events.ages <= 30.0
    changed = Events(events.users, events.items.copy(), events.ages, N_USERS, N_ITEMS)
    changed.items[later] = (changed.items[later] + 1) % N_ITEMS  # rewrite the 30 days after the cut-off
    a, b = (pair_rows(e, 30.0, 30.0, data.item_text_embedding, n_related=5, n_popular=3) for e in (events, changed))
    np.testing.assert_array_equal(a.users, b.users)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.features, b.features)
    assert a.features.shape[1] == len(FEATURES)
    # only the labels (the purchases after the cut-off) differ
    assert not np.array_equal(a.labels, b.labels)


def test_labels_are_the_purchases_of_the_horizon_after_the_cut_off():
    data = shop()
    events = Events.from_sequences(data.user_sequences, data.user_sequence_ages, N_ITEMS)
    rows = pair_rows(events, 30.0, 30.0, None, n_related=5, n_popular=3)
    window = (events.ages <= 30.0) & (events.ages > 0.0)
    bought = set(zip(events.users[window].tolist(), events.items[window].tolist()))
    expected = np.array([(u, i) in bought for u, i in zip(rows.users.tolist(), rows.items.tolist())])
    np.testing.assert_array_equal(rows.labels, expected)
    assert rows.labels.any()


def test_a_shop_with_nothing_to_learn_from_falls_back_to_decayed_purchases():
    data = shop()
    # one event per user: no user has both a history before a cut-off and a purchase after it
    data.user_sequences = [s[-1:] for s in data.user_sequences]
    data.user_sequence_ages = [a[-1:] for a in data.user_sequence_ages]
    model = NextPurchaseGBDT(**SMALL).fit(data)
    assert model.fit_report["fitted"] is False and model.fit_report["training_positives"] < 20
    scores = model.score(np.arange(N_USERS))
    assert np.isfinite(scores).all()
    last = np.array([s[-1] for s in data.user_sequences])
    np.testing.assert_array_equal(scores.argmax(axis=1), last)


def test_learning_on_a_share_of_the_negatives_keeps_every_purchase_and_the_probabilities_calibrated():
    data = shop()
    full = NextPurchaseGBDT(**SMALL).fit(data)
    some = NextPurchaseGBDT(**SMALL, negative_share=0.3).fit(data)
    positives = full.fit_report["training_positives"]
    assert some.fit_report["training_positives"] == positives  # every bought pair is kept
    kept = (some.fit_report["training_rows"] - positives) / (full.fit_report["training_rows"] - positives)
    assert 0.25 < kept < 0.35
    # the kept negatives weigh 1 / 0.3: the probabilities stay on the full model's scale (unweighted, the same
    # rows make every pair look about twice as likely on this shop)
    p_full, p_some = full.candidate_score.data - 1.0, some.candidate_score.data - 1.0
    assert 0.75 < p_some.mean() / p_full.mean() < 1.5  # unweighted: about 2
    scores = some.score(np.arange(N_USERS))
    assert (scores.argmax(axis=1) == np.arange(N_USERS) % STAPLES).mean() >= 0.9
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="gbdt_negative_share"):
            NextPurchaseGBDT(negative_share=bad)


def test_a_young_shop_learns_on_a_shorter_horizon():
    model = NextPurchaseGBDT(horizon_days=30.0, cutoffs=3, cutoff_step_days=7.0)
    assert model.training_shifts(45.0) == (15.0, [15.0, 22.0, 29.0])
    assert model.training_shifts(200.0) == (30.0, [30.0, 37.0, 44.0])


def test_save_load_round_trip_and_buy_again_evidence(tmp_path):
    data = shop()
    model = NextPurchaseGBDT(**SMALL).fit(data)
    model.save(tmp_path / "gbdt")
    loaded = load_model(tmp_path / "gbdt")
    assert type(loaded) is NextPurchaseGBDT and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.score(np.arange(N_USERS)), model.score(np.arange(N_USERS)))
    staple = 7 % STAPLES
    evidence = loaded.explain(7, np.array([staple]))[0]
    assert evidence.strategy == "repeat" and evidence.because_item == staple and evidence.count >= 10


def test_needs_timed_sequences():
    data = shop()
    plain = TrainingData(data.users, data.items, data.interactions, data.purchases, None, data.recent_popularity,
                         data.user_segment, AS_OF)
    with pytest.raises(ValueError, match="event sequences"):
        NextPurchaseGBDT(**SMALL).fit(plain)


def test_without_time_stamps_it_learns_the_next_step_leave_one_out():
    rng = np.random.default_rng(1)
    starts = rng.integers(0, N_ITEMS, size=200)
    sequences = [np.array([(s + k) % N_ITEMS for k in range(6)], dtype=np.int64) for s in starts]
    long = sp.csr_matrix((np.ones(1200, np.float32), (np.repeat(np.arange(200), 6), np.concatenate(sequences))),
                         shape=(200, N_ITEMS))
    data = TrainingData([f"u{u}" for u in range(200)], [f"i{i}" for i in range(N_ITEMS)], long, long * 0, None,
                        np.asarray(long.sum(axis=0)).ravel(), np.array([""] * 200), AS_OF, user_sequences=sequences)
    model = NextPurchaseGBDT(**{**SMALL, "cutoffs": 2}).fit(data)
    assert model.fit_report["timed"] is False and model.fit_report["horizon"] == 1.0
    assert model.fit_report["cutoffs_days_before"] == [1.0, 2.0] and model.fit_report["fitted"]
    scores = model.score(np.arange(200))
    scores[long.toarray() > 0] = -np.inf  # masked, as leave-one-out is scored
    assert (scores.argmax(axis=1) == (starts + 6) % N_ITEMS).mean() >= 0.9


def clustered_shop(seed: int = 0) -> TimedTrainingData:
    """Three families of items whose texts lie apart; every user buys within one family. The last two items of
    each family were never sold (new in the catalogue)."""
    rng = np.random.default_rng(seed)
    families, per_family, n_users = 3, 10, 90
    centres = rng.normal(size=(families, 16)) * 3
    text = (np.repeat(centres, per_family, axis=0) + rng.normal(size=(families * per_family, 16))).astype(np.float32)
    sequences, ages = [], []
    for u in range(n_users):
        family = u % families
        ages_u = np.sort(rng.uniform(0.5, 150.0, size=14))[::-1]  # oldest first
        sequences.append(family * per_family + rng.integers(0, per_family - 2, size=14))
        ages.append(ages_u.astype(np.float32))
    n_items = families * per_family
    purchases = sp.csr_matrix((np.ones(14 * n_users, np.float32), (np.repeat(np.arange(n_users), 14),
                                                                    np.concatenate(sequences))), shape=(n_users, n_items))
    return TimedTrainingData(
        users=[f"u{u}" for u in range(n_users)], items=[f"i{i}" for i in range(n_items)],
        interactions=purchases, purchases=purchases, last_purchase_age_days=None,
        recent_popularity=np.asarray(purchases.sum(axis=0)).ravel(), user_segment=np.array([""] * n_users),
        as_of=AS_OF, item_text_embedding=text, user_sequences=sequences, user_sequence_ages=ages)


def test_items_hidden_at_a_cut_off_look_never_sold_but_still_label():
    data = clustered_shop()
    events = Events.from_sequences(data.user_sequences, data.user_sequence_ages, 30)
    hidden = np.zeros(30, bool)
    hidden[[0, 11]] = True
    rows = pair_rows(events, 30.0, 30.0, data.item_text_embedding, n_related=5, n_popular=3, hidden=hidden)
    f = {name: rows.features[:, k] for k, name in enumerate(FEATURES)}
    on_hidden = hidden[rows.items]
    assert on_hidden.any() and (f["sold_all"][on_hidden] == 0).all() and (f["in_history"][on_hidden] == 0).all()
    # the purchases of hidden items after the cut-off are still the labels
    window = (events.ages <= 30.0) & hidden[events.items]
    later = set(zip(events.users[window].tolist(), events.items[window].tolist()))
    got = {(u, i) for u, i, y in zip(rows.users.tolist(), rows.items.tolist(), rows.labels) if y and hidden[i]}
    assert got and got <= later


def test_never_sold_items_are_scored_through_their_text_and_explained():
    data = clustered_shop()
    model = NextPurchaseGBDT(**{**SMALL, "new_item_share": 0.3}).fit(data)
    assert model.fit_report["new_item_rows"] > 0 and model.fit_report["new_item_positives"] > 0
    assert model.fit_report["new_item_fitted"] and model.fit_report["new_item_candidates"] > 0
    scores = model.score(np.arange(90))
    new = np.array([8, 9, 18, 19, 28, 29])
    own = np.array([[f * 10 + 8, f * 10 + 9] for f in np.arange(90) % 3])
    own_best = np.take_along_axis(scores, own, axis=1).max(axis=1)
    other_best = np.array([scores[u, np.setdiff1d(new, own[u])].max() for u in range(90)])
    assert (own_best >= 1.0).all()  # a candidate with the trees' own probability, not the popularity floor
    assert (own_best > other_best).mean() >= 0.9
    evidence = model.explain(4, own[4])
    assert all(e.strategy == "new_item" and e.because_item // 10 == 4 % 3 for e in evidence)
    assert model.explain(4, np.array([data.user_sequences[4][-1]]))[0].strategy == "repeat"


def test_learning_new_items_leaves_the_sold_items_scores_as_they_were():
    data = clustered_shop()
    with_new = NextPurchaseGBDT(**{**SMALL, "new_item_share": 0.3}).fit(data).score(np.arange(90))
    without = NextPurchaseGBDT(**{**SMALL, "new_item_share": 0.0}).fit(data).score(np.arange(90))
    sold = np.setdiff1d(np.arange(30), [8, 9, 18, 19, 28, 29])
    np.testing.assert_array_equal(with_new[:, sold], without[:, sold])
    assert not np.array_equal(with_new, without)


def test_an_item_listed_long_ago_and_never_sold_is_dormant_not_new():
    data = clustered_shop()
    listed = np.full(30, 300.0)
    listed[[8, 18, 28]] = 3.0  # launched three days ago; 9, 19, 29 have been listed for 300 days without a sale
    data.item_first_seen_days = listed
    model = NextPurchaseGBDT(**{**SMALL, "new_item_share": 0.3, "new_item_days": 14, "sources": "ease,new"}).fit(data)
    np.testing.assert_array_equal(np.flatnonzero(model.new_items), [8, 18, 28])
    scores = model.score(np.arange(90))
    assert (scores[:, [9, 19, 29]] < 1.0).all()  # never offered as new
    own = 10 * (np.arange(90) % 3) + 8
    assert (scores[np.arange(90), own] >= 1.0).all()
    assert model.explain(4, np.array([9]))[0].strategy == "popularity"
    # without catalogue dates every never-sold item counts as new
    undated = NextPurchaseGBDT(**{**SMALL, "new_item_share": 0.3, "new_item_days": 14, "sources": "ease,new"})
    data.item_first_seen_days = None
    np.testing.assert_array_equal(np.flatnonzero(undated.fit(data).new_items), [8, 9, 18, 19, 28, 29])

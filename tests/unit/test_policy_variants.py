"""A/B bucketing: stable across days and user sets, shares met within sampling error, specs checked."""
from __future__ import annotations

import numpy as np
import pytest

from recsys_tasks.config import Settings
from recsys_tasks.policy.variants import Knobs, assign, bucket_position, parse_variants

SETTINGS = Settings()
USERS = [str(10_000 + i) for i in range(20_000)]


def test_default_is_one_control_arm_with_the_settings_knobs():
    (arm,) = parse_variants(SETTINGS.variants, SETTINGS)
    assert (arm.name, arm.share) == ("control", 1.0)
    assert arm.knobs == Knobs.from_settings(SETTINGS) and arm.knobs.policy


def test_arms_override_knobs_and_keep_the_rest():
    arms = parse_variants({"control": {"share": 0.8}, "diverse": {"share": 0.2, "mmr_lambda": 0.6, "model": "ease"}},
                          SETTINGS)
    diverse = arms[1].knobs
    assert (diverse.mmr_lambda, diverse.model, diverse.max_per_brand) == (0.6, "ease", SETTINGS.max_per_brand)


@pytest.mark.parametrize("spec, message", [
    ({"a": {"share": 0.5}, "b": {"share": 0.4}}, "add up to"),
    ({"a": {"share": 1.0, "colour": "red"}}, "unknown knobs"),
    ({"a": {"share": 1.5}}, "not in"),
    ({}, "non-empty"),
])
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_variants(spec, SETTINGS)


def test_shares_are_met_within_sampling_error():
    arms = parse_variants({"a": {"share": 0.5}, "b": {"share": 0.3}, "c": {"share": 0.2}}, SETTINGS)
    names = assign(USERS, arms, "salt-1")
    n = len(USERS)
    for arm in arms:
        count = int((names == arm.name).sum())
        sigma = np.sqrt(n * arm.share * (1 - arm.share))
        assert abs(count - n * arm.share) < 4 * sigma, (arm.name, count)


def test_a_users_arm_is_stable_across_days_and_user_sets():
    arms = parse_variants({"a": {"share": 0.5}, "b": {"share": 0.5}}, SETTINGS)
    today = dict(zip(USERS, assign(USERS, arms, "salt-1")))
    tomorrow_users = USERS[5_000:] + [str(i) for i in range(50)]  # some users gone, new ones arrived
    tomorrow = dict(zip(tomorrow_users, assign(tomorrow_users, arms, "salt-1")))
    assert all(tomorrow[u] == today[u] for u in USERS[5_000:])


def test_a_new_salt_redraws_the_users_independently():
    arms = parse_variants({"a": {"share": 0.5}, "b": {"share": 0.5}}, SETTINGS)
    same = (assign(USERS, arms, "salt-1") == assign(USERS, arms, "salt-2")).mean()
    assert 0.47 < same < 0.53


def test_positions_are_uniform_and_zero_share_arms_get_nobody():
    position = bucket_position(USERS, "salt-1")
    assert position.min() >= 0 and position.max() < 1
    assert np.histogram(position, bins=10, range=(0, 1))[0].min() > 1800
    arms = parse_variants({"a": {"share": 0.0}, "b": {"share": 1.0}}, SETTINGS)
    assert set(assign(USERS, arms, "salt-1")) == {"b"}

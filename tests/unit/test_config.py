"""Settings: defaults < source defaults < environment < run parameters."""

import pytest

from recsys_tasks.config import load_settings


def test_recsys_home_comes_from_the_environment(tmp_path):
    assert load_settings({}, environ={"RECSYS_HOME": str(tmp_path)}).recsys_home == tmp_path.resolve()


def test_run_parameters_beat_environment_beat_source_defaults():
    env = {"RECSYS_TOP_K": "7", "RECSYS_MAX_BAD_ROW_SHARE": "0.5"}
    s = load_settings({"source": "online-retail"}, environ=env)
    assert (s.top_k, s.max_bad_row_share, s.holdout_days) == (7, 0.5, 30)  # holdout from the source defaults
    s = load_settings({"source": "online-retail", "top_k": 3, "models": ["ease"]}, environ=env)
    assert (s.top_k, s.models) == (3, ("ease",))


def test_empty_parameters_keep_the_defaults_and_landing_defaults_to_the_demo(tmp_path):
    s = load_settings({"landing": "", "holdout_days": None}, environ={"RECSYS_HOME": str(tmp_path)})
    assert s.holdout_days == 14 and s.landing_path == tmp_path.resolve() / "landing" / "demo"


def test_precision_comes_from_the_environment_and_an_unknown_one_is_refused():
    assert load_settings(environ={}).lm_precision == "auto"
    assert load_settings(environ={"RECSYS_LM_PRECISION": "fp32"}).lm_precision == "fp32"
    with pytest.raises(ValueError, match="unknown lm_precision 'fp16'"):
        load_settings({"lm_precision": "fp16"}, environ={})


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="unknown source 'ftp'"):
        load_settings({"source": "ftp"}, environ={})

"""Test fixtures: a private Airflow home (SQLite, no examples) and small demo landings on real files."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# Airflow reads its configuration when first imported: point it at a throwaway home before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="recsys-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("RECSYS_HOME", str(_AIRFLOW_HOME / "recsys_home"))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Return an Airflow home whose metadata database is migrated."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, env=dict(os.environ),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _AIRFLOW_HOME


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.slow)

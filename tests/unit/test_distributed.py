"""Data-parallel fits under real torchrun processes (gloo on the CPU; NCCL is the same code on GPUs)."""
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys_tasks.config import load_settings
from recsys_tasks.models import top_k
from recsys_tasks.models.distributed import fingerprint, fit_in_processes, generators, process_count, share
from recsys_tasks.processes import descendants, process_gone
from recsys_tasks.training import _fit_and_save
from tests.unit.test_student import small_student
from tests.unit.test_teacher import chain_data, small_teacher

REPO = Path(__file__).resolve().parents[2]


def taught_share(model, data) -> float:
    """Return the share of users (whose chain goes on) whose top item is the next link of the chain."""
    top, _ = top_k(model, np.arange(data.n_users), 1, exclude=data.interactions)
    last = np.asarray([s[-1] for s in data.user_sequences])
    taught = last < 9
    return float((top[taught, 0] == last[taught] + 1).mean())


def test_every_process_gets_as_many_batches_and_together_they_cover_all():
    batches = list(range(5))
    shares = [share(batches, rank, 2) for rank in range(2)]
    assert shares == [[0, 2, 4], [1, 3, 0]]  # the short one wraps: DDP needs the same number of steps everywhere
    assert set(shares[0]) | set(shares[1]) == set(batches)
    assert share(batches, 0, 1) == batches


def test_two_processes_fit_a_teacher_that_learns_the_chain():
    chain = chain_data()
    model = fit_in_processes(small_teacher(), chain, 2)
    report = model.fit_report
    assert report["processes"] == 2 and report["epochs_run"] == 30
    assert report["loss_by_epoch"][-1] < report["loss_by_epoch"][0] / 2
    assert taught_share(model, chain) > 0.9


def test_two_processes_distil_a_student_with_the_carried_prior_and_a_sampled_softmax():
    chain = chain_data(repeats=True)
    teacher = small_teacher(full_softmax_max_items=4, buy_again_weight=1.0, prior_weight=0.5).fit(chain)
    model = fit_in_processes(small_student(prior_rank=4, full_softmax_max_items=4).with_teacher(teacher), chain, 2)
    assert model.fit_report["processes"] == 2 and model.fit_report["prior_rank"] == 4
    assert model.fit_report["loss_by_epoch"][-1] < model.fit_report["loss_by_epoch"][0]
    scores = model.score(np.arange(chain.n_users))
    assert np.isfinite(scores).all() and model.prior_weight is not None


def test_a_failing_process_fails_the_fit_by_name():
    with pytest.raises(RuntimeError, match="torchrun processes fitting teacher failed"):
        fit_in_processes(small_teacher(), None, 2)  # no data: every process raises in fit


def test_the_nightly_fit_runs_in_processes_when_lm_processes_asks(tmp_path):
    settings = load_settings({"lm_processes": 2, "recsys_home": str(tmp_path)}, environ={})
    chain = chain_data()
    target = tmp_path / "teacher"
    info = _fit_and_save(settings, "teacher", chain, target, {"ds": date(2024, 3, 1)},
                         params={"dim": 16, "layers": 1, "heads": 2, "max_len": 6, "epochs": 30, "lr": 0.01,
                                 "dropout": 0.0, "id_dropout": 0.0, "device": "cpu"})
    manifest = json.loads((target / "manifest.json").read_text())
    assert info["fit_report"]["processes"] == 2 and manifest["fit_report"]["processes"] == 2


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_fit_a_teacher_with_nccl():
    chain = chain_data()
    model = fit_in_processes(small_teacher(device="auto"), chain, 2)
    assert model.fit_report["processes"] == 2 and model.fit_report["device"].startswith("cuda")
    assert taught_share(model, chain) > 0.9


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (on a CPU any process count runs, on gloo)")
def test_more_processes_than_gpus_is_refused():
    with pytest.raises(ValueError, match="one GPU per process"):
        fit_in_processes(small_teacher(device="auto"), chain_data(), torch.cuda.device_count() + 1)


def test_a_negative_process_count_is_refused_and_zero_means_one_per_gpu():
    with pytest.raises(ValueError, match="lm_processes must be 0"):
        load_settings({"lm_processes": -1}, environ={})
    assert process_count(0) == max(1, torch.cuda.device_count()) and process_count(3) == 3


def test_the_replica_check_tells_different_weights_apart():
    chain = chain_data()
    a, b, c = (small_teacher(epochs=2, seed=s).fit(chain) for s in (0, 0, 1))
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_processes_share_the_batch_order_and_draw_their_own_samples():
    pairs = [generators(torch.Generator().manual_seed(7), rank, 2) for rank in range(2)]
    orders = [torch.randperm(10, generator=order).tolist() for order, _ in pairs]
    draws = [torch.randint(0, 1000, (5,), generator=own).tolist() for _, own in pairs]
    assert orders[0] == orders[1] and draws[0] != draws[1]  # one list to share; other negatives and users
    solo = torch.Generator().manual_seed(7)
    order, own = generators(solo, 0, 1)
    assert order is own is solo  # one process: the draws are those of a fit without torch.distributed


def alive(pids: set[int]) -> set[int]:
    """Return those of pids still running (a zombie has ended)."""
    return {pid for pid in pids if not process_gone(pid)}


FIT_FOREVER = """
import signal, sys
from recsys_tasks.models.distributed import fit_in_processes
from tests.unit.test_teacher import chain_data, small_teacher
if sys.argv[1] == "raise":  # as Airflow's task runner does on SIGTERM (a timeout, a cancelled run)
    def stop(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
fit_in_processes(small_teacher(epochs=1_000_000), chain_data(), 2)
"""


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_the_torchrun_processes_end_with_the_task(how):
    # raise: the task process gets SIGTERM and raises (Airflow's task runner on a timeout or a cancelled run);
    # kill: it is killed outright. torchrun starts its workers in sessions of their own: neither may outlive it.
    task = subprocess.Popen([sys.executable, "-c", FIT_FOREVER, how], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = set()
    try:
        deadline = time.monotonic() + 120
        while len(started) < 3:  # torchrun and its two workers
            assert task.poll() is None and time.monotonic() < deadline, "the processes did not start"
            started = descendants(task.pid)
            time.sleep(0.5)
        time.sleep(2)  # the workers are past their start
        os.kill(task.pid, signal.SIGTERM if how == "raise" else signal.SIGKILL)
        task.wait(timeout=60)
        deadline = time.monotonic() + 60
        while alive(started):
            assert time.monotonic() < deadline, f"left running: {alive(started)}"
            time.sleep(0.5)
    finally:
        for pid in alive(started | descendants(task.pid)):
            os.kill(pid, signal.SIGKILL)

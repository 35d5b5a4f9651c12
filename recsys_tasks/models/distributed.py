"""Fit the teacher, the student and the text tuning data-parallel over several processes with torch.distributed.

`fit_in_processes` hands the unfitted model and the night's TrainingData (`tune_in_processes`: the text tuning's
arguments) to `python -m torch.distributed.run --standalone --nproc_per_node N -m recsys_tasks.models.distributed
<workdir>` (torchrun). For a fit every process builds the same windows and batches (same seed), trains on its share
of each epoch's batches with its own draws (sampled negatives, distilled users); the text tuning draws its own batch
of pairs on every process (in-batch negatives within each process's batch). DistributedDataParallel averages the
gradients after every step (NCCL between GPUs, one per process; gloo between CPU processes), so the replicas stay
identical, and the processes check that they do before the first one writes the result back. The setting
lm_processes picks N (1: no torchrun, everything runs in the task's own process; 0: one per visible GPU). Across
machines, run the same entry point under torchrun with --nnodes and a rendezvous endpoint.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from recsys_tasks.models.device import torch_device

log = logging.getLogger(__name__)
JOB, FITTED = "job.pt", "fitted.pt"  # what the task hands the processes, what the first one hands back


def world() -> tuple[int, int]:
    """Return (this process's rank, number of processes); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def process_count(setting: int) -> int:
    """Return the processes a fit runs in for the lm_processes setting: 0 is one per visible GPU (1 without)."""
    return setting if setting > 0 else max(1, torch.cuda.device_count() if torch.cuda.is_available() else 0)


def data_parallel(module: torch.nn.Module, device: torch.device, find_unused: bool = True) -> torch.nn.Module:
    """Return the module wrapped in DistributedDataParallel under torch.distributed, else the module itself.

    find_unused: a step may leave a part unused (the distillation's weights without a teacher list in the batch)."""
    if world()[1] == 1:
        return module
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def share(batches: list, rank: int, processes: int) -> list:
    """Return this process's batches: every processes-th from rank on, as many for each (the last few wrap)."""
    if processes == 1:
        return batches
    per = math.ceil(len(batches) / processes)
    return [batches[(rank + processes * i) % len(batches)] for i in range(per)]


def generators(generator: torch.Generator, rank: int, processes: int) -> tuple[torch.Generator, torch.Generator]:
    """Return (the batch order's generator, this process's own draws' generator): the order is the same on every
    process (each takes its share of one list), the draws (sampled negatives, the users distilled) differ."""
    if processes == 1:
        return generator, generator
    order = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    generator.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)) + rank)  # in place: the closures
    return order, generator  # that draw from it (the student's distillation) see this process's stream


def _reduced(value: float, device: torch.device, op) -> float:
    if world()[1] == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(tensor, op=op)
    return float(tensor.item())


def any_true(flag: bool, device: torch.device) -> bool:
    """Return True on every process when flag is True on any (the processes stop together)."""
    return _reduced(float(flag), device, dist.ReduceOp.MAX) > 0


def mean(value: float, device: torch.device) -> float:
    """Return the mean of value over the processes."""
    return _reduced(value, device, dist.ReduceOp.SUM) / world()[1]


def fingerprint(model) -> float:
    """Return a number that differs between replicas whose fitted weights differ (the net, or exported vectors)."""
    net = getattr(model, "net", None)
    if net is not None:
        return float(sum(p.detach().double().abs().sum().item() for p in net.parameters()))
    parts = [getattr(model, name, None) for name in ("user_vectors", "item_vectors")]
    return float(sum(np.abs(np.asarray(p, dtype=np.float64)).sum() for p in parts if p is not None))


def check_replicas(mark: float, device: torch.device, what: str) -> None:
    """Fail on every process unless all processes hold the same fingerprint `mark` of their weights."""
    rank, processes = world()
    if processes == 1:
        return
    mine = torch.tensor([mark], dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
    every = [torch.zeros_like(mine) for _ in range(processes)]
    dist.all_gather(every, mine)
    spread = max(abs(float(x) - float(mine)) for x in every)
    if spread > 1e-6 * max(1.0, abs(float(mine))):
        raise RuntimeError(f"the {processes} replicas of {what} ended with different weights "
                           f"(fingerprints {[round(float(x), 6) for x in every]})")


def fit_in_processes(model, data, processes: int, workdir: Path | None = None):
    """Return the model fitted by `processes` torchrun processes on this machine (the task waits for them); one
    process: fitted here, without torchrun."""
    if processes == 1:
        return model.fit(data)
    return _run({"task": "fit", "model": model, "data": data, "cuda": _on_cuda(model)}, processes, model.name,
                workdir)


def tune_in_processes(tuning: dict, processes: int, workdir: Path | None = None) -> dict:
    """Return the report of text_tuning.tune_encoder(**tuning) run by `processes` torchrun processes (the first
    one saves the encoder into tuning["out_dir"])."""
    cuda = torch_device(tuning.get("device")).type == "cuda"
    return _run({"task": "tune", "tuning": tuning, "cuda": cuda}, processes, "the text encoder", workdir)


def _run(job: dict, processes: int, what: str, workdir: Path | None):
    """Hand a job to `processes` torchrun processes, wait for them, return what the first one wrote back."""
    gpus = torch.cuda.device_count() if job["cuda"] else 0
    if 0 < gpus < processes:
        raise ValueError(f"lm_processes={processes} asks for one GPU per process; this machine has {gpus}")
    with tempfile.TemporaryDirectory(prefix="recsys-ddp-", dir=workdir) as tmp:
        job_dir = Path(tmp)
        torch.save(job, job_dir / JOB)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   "-m", "recsys_tasks.models.distributed", str(job_dir)]
        log.info("fitting %s in %d processes: %s", what, processes, " ".join(command))
        # ended with the task: on an exception here (Airflow's SIGTERM on a timeout or a cancelled run) and by the
        # parent-death signal when the task is killed outright; torchrun stops its workers on SIGTERM, and each
        # worker also ends with torchrun (main)
        torchrun = subprocess.Popen(command, preexec_fn=_end_with_parent)
        try:
            code = torchrun.wait()
        except BaseException:
            _end(torchrun)
            raise
        if code != 0 or not (job_dir / FITTED).exists():
            raise RuntimeError(f"the {processes} torchrun processes fitting {what} failed (exit code "
                               f"{code}); their output is above in this log")
        return torch.load(job_dir / FITTED, map_location="cpu", weights_only=False)


def _on_cuda(model) -> bool:
    """Return True when the model fits on CUDA (its device setting: auto finds a GPU, or cuda)."""
    return torch_device(getattr(model, "device", None)).type == "cuda"


def _end_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (PR_SET_PDEATHSIG); exit if it already has."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(1)


def _end(torchrun: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM torchrun (it stops its workers, each in a session of its own), SIGKILL it after grace seconds (its
    workers then end by their parent-death signal)."""
    torchrun.terminate()
    try:
        torchrun.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        torchrun.kill()
        torchrun.wait()


def main(argv: list[str] | None = None) -> int:
    """One torchrun process: fit the job's model (or tune the text encoder) on its share, check the replicas agree,
    rank 0 writes the result back."""
    job = Path((argv or sys.argv[1:])[0])
    _end_with_parent()  # torchrun starts its workers in sessions of their own: nothing else ends them with it
    inputs = torch.load(job / JOB, map_location="cpu", weights_only=False)
    cuda = inputs["cuda"]  # lm_device=cpu on a GPU machine: gloo between CPU processes
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, processes = world()
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s rank {rank}/{processes} %(name)s %(message)s")
    try:
        if inputs["task"] == "tune":
            from recsys_tasks.models.text_tuning import tune_encoder  # checks its replicas before rank 0 saves

            result = tune_encoder(**inputs["tuning"])
        else:
            result = inputs["model"].fit(inputs["data"])
            result.fit_report = {**getattr(result, "fit_report", {}), "processes": processes}
            check_replicas(fingerprint(result), torch.device("cuda" if cuda else "cpu"), result.name)
        if rank == 0:
            torch.save(result, job / FITTED)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stages of a long benchmark: their wall times kept beside their outputs, and independent stages run in parallel.

A benchmark such as ``science.py`` writes every stage's output (an AA trajectory, a training run, a production)
to a work directory and reuses what is there, so an interrupted run continues where it stopped. The same
property lets independent stages run in separate processes: each process produces its stages' files, and the
benchmark's ordinary sequential pass afterwards finds them all and only analyses. :func:`plan_lanes` splits
tasks into lanes of about equal estimated cost (longest first, each to the lane with the least so far), and
:func:`run_lanes` runs one process per lane.
"""
import fcntl
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from openmm_dynmatch.fileio import write_json


class StageClock:
    """Wall seconds of each stage, kept in ``<work>/timings.json``: a stage reused from an earlier (or
    interrupted) run reports the time it took when it ran, so a resumed run's timings still add up to one run.
    Processes sharing a work directory update the file under a lock, so none loses another's stages."""

    def __init__(self, work: Path):
        self.path = Path(work) / "timings.json"
        self.seconds = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.used = []  # the stages this clock has run or reused, in order

    def run(self, key: str, reused: bool, function, *args):
        """``function(*args)``, timed under ``key`` unless its output existed already (``reused``)."""
        start = time.perf_counter()
        value = function(*args)
        elapsed = time.perf_counter() - start
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.exists():
                self.seconds.update(json.loads(self.path.read_text()))
            if not reused or key not in self.seconds:
                self.seconds[key] = elapsed
                write_json(self.path, self.seconds)
        if key not in self.used:
            self.used.append(key)
        return value

    def this_run(self) -> dict:
        """The times of the stages this clock has run or reused: a work directory shared with a run that had more
        stages (other friction starts, say) also records theirs, which are left out."""
        return {key: self.seconds[key] for key in self.used if key in self.seconds}


def plan_lanes(costs: dict, jobs: int) -> list:
    """Split tasks into at most ``jobs`` lanes of about equal total cost.

    Parameters
    ----------
    costs : dict
        Task -> estimated cost (any unit); tasks must be hashable and picklable.
    jobs : int
        Number of lanes (processes), at least 1.

    Returns
    -------
    list of list
        The non-empty lanes, each a list of tasks in the order they run: longest first within a lane.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    lanes, loads = [[] for _ in range(jobs)], [0.0] * jobs
    for task in sorted(costs, key=lambda t: -costs[t]):
        k = loads.index(min(loads))
        lanes[k].append(task)
        loads[k] += costs[task]
    return [lane for lane in lanes if lane]


def run_lanes(function, lanes: list, *args) -> None:
    """``function(lane, *args)`` for every lane, each in its own (spawned) process, until all have finished.

    ``function`` must be importable from the module that defines it (a module-level function). When a lane
    fails, the others still run to the end (their outputs are kept), then the first failure is raised.
    """
    if len(lanes) == 1:
        function(lanes[0], *args)
        return
    errors = []
    with ProcessPoolExecutor(max_workers=len(lanes), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(function, lane, *args) for lane in lanes]
        for lane, future in zip(lanes, futures):
            try:
                future.result()
            except Exception as error:  # noqa: BLE001  (re-raised below, after the other lanes)
                errors.append((lane, error))
    if errors:
        lane, error = errors[0]
        raise RuntimeError(f"{len(errors)} of {len(lanes)} stage lanes failed, first the lane {lane}: {error}; "
                           f"finished stages are kept, run again to resume") from error

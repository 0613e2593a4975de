"""Thread defaults of the package's commands: cores available, OMP_NUM_THREADS, --threads on every verb."""
import os
import subprocess
import sys

import pytest
import torch

from openmm_dynmatch import threads
from openmm_dynmatch.threads import THREAD_VARIABLES, available_cores, default_threads, use_threads


@pytest.fixture
def four_cores(monkeypatch):
    """A process allowed on cores 0-3 of a larger machine."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)


@pytest.mark.parametrize("omp, expected", [(None, 4), ("2", 2), ("8", 4), ("3,1", 3), ("zero", 4), ("0", 4)])
def test_default_threads_are_the_cores_available_at_most_omp_num_threads(four_cores, monkeypatch, omp, expected):
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert available_cores() == 4  # the affinity mask, not the machine's 64 cores
    assert default_threads() == expected


def test_use_threads_sets_the_runtimes_and_torch(monkeypatch):
    for name in THREAD_VARIABLES + ("OMP_WAIT_POLICY",):
        monkeypatch.setenv(name, "unchanged")  # monkeypatch restores each afterwards
    monkeypatch.delenv("OMP_WAIT_POLICY")
    import openmm

    cpu = openmm.Platform.getPlatformByName("CPU")
    before, cpu_before = torch.get_num_threads(), cpu.getPropertyDefaultValue("Threads")
    try:
        assert use_threads(3) == 3
        assert torch.get_num_threads() == 3 and cpu.getPropertyDefaultValue("Threads") == "3"
        assert [os.environ[name] for name in THREAD_VARIABLES] == ["3", "3", "3"]
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    finally:
        torch.set_num_threads(before)
        cpu.setPropertyDefaultValue("Threads", cpu_before)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=f"threads must be a positive integer, got {bad!r}"):
            use_threads(bad)


def test_threads_set_before_torch_loads_reach_its_openmp_runtime():
    """In a fresh process the thread count chosen before ``import torch`` is the one torch runs with, also
    against an OMP_NUM_THREADS inherited from the shell."""
    code = ("from openmm_dynmatch.threads import use_threads; n = use_threads(2); import torch; "
            "print(n, torch.get_num_threads())")
    env = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES + ("OMP_WAIT_POLICY",)}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2"]


def test_every_verb_takes_threads():
    from openmm_dynmatch.cli import VERBS, build_parser
    from openmm_dynmatch.cli_reference import _subcommands

    verbs = _subcommands(build_parser())
    assert set(verbs) == set(VERBS)
    for name, (sub, _) in verbs.items():
        action = sub._option_string_actions.get("--threads")
        assert action is not None and action.default is None, f"dynmatch {name} lacks --threads"

"""Fault injection on the command line: kill -9 at random moments, random byte flips in input files.

Every case runs ``dynmatch`` in a fresh process at toy size (alanine dipeptide in implicit solvent, a few ps).

Kills (``"kill"``: ``reference``, ``train``, ``simulate``)
    An uninterrupted run gives the expected output. Each trial starts the same command, sends SIGKILL after a
    random delay (uniform over 30-100% of the uninterrupted run's wall time; its start is mostly imports), then
    runs the resuming command (``reference``: the same command; ``train --resume RUN_DIR``; ``simulate
    --resume``) and compares its
    output with the expected one: trajectory positions (``reference``, ``simulate``) or the parameters of the
    trained potential (``train``). Outcomes: ``resumed_correctly`` (the resumed run succeeded and its output is
    equal), ``silent_corruption`` (succeeded, output differs: ``max_abs_diff`` says by how much),
    ``clean_error`` (the resume refused with a one-line ``dynmatch ...: error:`` message), ``lost_data`` (the
    resume crashed with a traceback, or left no readable output). ``finished_before_kill`` counts the kills
    that came after the run had finished.

Byte flips (``"flip"``: an AA trajectory given to ``map``, an exported model given to ``simulate``, a CG
trajectory given to ``simulate --start``)
    Each trial flips 1-8 random bytes of a copy of the input and runs the command. Outcomes: ``clean_error``,
    ``unclean_error`` (a traceback), ``unaffected`` (succeeded with the expected output: the flipped bytes were
    unused), ``silent_corruption`` (succeeded with another output).

Usage (JSON on stdout, one summary line per case on stderr)::

    python benchmarks/fault_injection.py --quick
    python benchmarks/fault_injection.py --trials 5 --out benchmarks/results/fault_injection.json
"""
import argparse
import datetime
import json
import os
import platform as host
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from openmm_dynmatch.fileio import write_json

REFERENCE = ["reference", "--system", "alanine-dipeptide-implicit", "--frame-interval-ps", "0.05",
             "--platform", "Reference", "--equilibration-ps", "0.2", "--save-forces", "--seed", "3", "--quiet"]
TRAIN_CONFIG = {
    "data": {"window_frames": 4, "n_blocks": 2},
    "potential": {"kind": "none", "dtype": "float64", "prior_trainable": True},
    "classifier": {"kind": "invariant", "options": {"hidden": 8}, "dtype": "float64"},
    "dynamics": {"integrator": "langevin", "timestep_ps": 0.005, "friction_per_ps": 10.0},
    "train": {"pretrain": "force_matching", "pretrain_iterations": 20, "pretrain_eval_every": 10,
              "iterations": 12, "walkers": 8, "classifier_warmup": 2, "checkpoint_every": 2, "probe_windows": 0,
              "snr_every": 0, "seed": 1},
}


def dynmatch(args, cwd: Path, timeout: float = 600.0) -> subprocess.CompletedProcess:
    """Run ``dynmatch ARGS`` in a fresh process with one thread."""
    return subprocess.run([sys.executable, "-m", "openmm_dynmatch", *args, "--threads", "1"], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=_env())


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def killed_run(args, cwd: Path, delay_s: float) -> bool:
    """Start ``dynmatch ARGS``, SIGKILL it after ``delay_s``; True if it had finished before."""
    process = subprocess.Popen([sys.executable, "-m", "openmm_dynmatch", *args, "--threads", "1"], cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        process.wait(timeout=delay_s)
        return True
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return False


def clean_error(done: subprocess.CompletedProcess) -> bool:
    """A refusal in one line, as the command line reports expected errors."""
    lines = done.stderr.strip().splitlines()
    return done.returncode == 2 and len(lines) >= 1 and lines[-1].startswith("dynmatch ") and \
        ": error: " in lines[-1] and "Traceback" not in done.stderr


def error_summary(stderr: str) -> str:
    """The one-line error, or for a traceback its exception line (not the C++ frames some libraries append)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if "Traceback" not in stderr:
        return lines[-1][:300] if lines else ""
    after = lines[max(i for i, line in enumerate(lines) if line.startswith("Traceback")):]
    raised = [line for line in after if not line.startswith((" ", "\t", "Traceback", "frame #"))]
    return (raised[0] if raised else after[-1])[:300]


def positions(path: Path):
    from openmm_dynmatch import trajio

    try:
        return trajio.load(path).positions
    except Exception:  # any unreadable file is "no output" here
        return None


def potential_parameters(path: Path):
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return None
    tensors = state.get("state_dict", state) if isinstance(state, dict) else {}
    flat = [np.asarray(v, dtype=np.float64).ravel() for k, v in sorted(tensors.items()) if hasattr(v, "shape")]
    return np.concatenate(flat) if flat else None


def difference(a, b) -> float:
    if a is None or b is None or np.shape(a) != np.shape(b):
        return float("inf")
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)), initial=0.0))


# ------------------------------------------------------------------ setup: one uninterrupted run of each verb

def prepare(folder: Path, quick: bool) -> dict:
    """Uninterrupted runs: AA reference, mapping, training, simulation; their commands, outputs and wall times."""
    ns = "0.003" if quick else "0.005"
    cases = {}
    started = time.perf_counter()
    aa_args = REFERENCE + ["--ns", ns, "--chunk-frames", "10"]
    _check(dynmatch(aa_args + ["--out", "aa.h5"], folder), "reference")
    cases["reference"] = {"args": aa_args, "out": "aa.h5", "wall_s": time.perf_counter() - started}
    _check(dynmatch(["map", "--aa", "aa.h5", "--mapping", "ala2-heavy10", "--out", "cg.h5", "--no-progress"],
                    folder), "map")
    config = json.loads(json.dumps(TRAIN_CONFIG))
    config["data"]["cg_path"] = str(folder / "cg.h5")
    (folder / "train.yaml").write_text(json.dumps(config))  # JSON is YAML
    started = time.perf_counter()
    _check(dynmatch(["train", "--config", "train.yaml", "--run-dir", "run", "--no-progress"], folder), "train")
    cases["train"] = {"args": ["train", "--config", "train.yaml", "--no-progress"], "out": "run/potential.pt",
                      "wall_s": time.perf_counter() - started}
    sim_args = ["simulate", "--model", "run/model.pt", "--walkers", "4", "--steps", "4000" if quick else "8000",
                "--frame-interval-ps", "0.02", "--start", "cg.h5", "--platform", "Reference", "--seed", "2",
                "--no-progress"]
    started = time.perf_counter()
    _check(dynmatch(sim_args + ["--out", "sim.h5"], folder), "simulate")
    cases["simulate"] = {"args": sim_args, "out": "sim.h5", "wall_s": time.perf_counter() - started}
    return cases


def _check(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"the uninterrupted {what} run failed:\n{done.stderr[-2000:]}")


# ------------------------------------------------------------------ kill -9 and resume

def kill_trial(verb: str, case: dict, folder: Path, trial: int, rng) -> dict:
    """One kill at a random moment and the resume; the outcome and the numbers behind it."""
    work = folder / f"kill_{verb}_{trial}"
    work.mkdir()
    for name in ("cg.h5", "train.yaml", "run"):
        source = folder / name
        if verb != "train" and name == "run":
            (work / "run").mkdir()
            shutil.copy(source / "model.pt", work / "run" / "model.pt")
        elif source.is_file():
            shutil.copy(source, work / name)
    if verb == "train":
        config = json.loads((folder / "train.yaml").read_text())
        config["data"]["cg_path"] = str(work / "cg.h5")
        (work / "train.yaml").write_text(json.dumps(config))
        first, again = case["args"] + ["--run-dir", "run2"], case["args"] + ["--resume", "run2"]
        out = work / "run2" / "potential.pt"
    else:
        first = case["args"] + ["--out", case["out"]]
        again = first + (["--resume"] if verb == "simulate" else [])
        out = work / case["out"]
    delay = float(rng.uniform(0.3, 1.0) * case["wall_s"])  # the first ~30% is mostly Python imports
    finished = killed_run(first, work, delay)
    done = dynmatch(again, work)
    read = potential_parameters if verb == "train" else positions
    diff = difference(read(out), read(folder / case["out"])) if done.returncode == 0 else None
    if done.returncode == 0:
        outcome = "resumed_correctly" if diff == 0.0 else "lost_data" if diff == float("inf") else \
            "silent_corruption"
    else:
        outcome = "clean_error" if clean_error(done) else "lost_data"
    row = {"trial": trial, "kill_after_s": round(delay, 3), "finished_before_kill": finished, "outcome": outcome,
           "max_abs_diff": diff}
    if done.returncode != 0:
        row.update(returncode=done.returncode, error=error_summary(done.stderr))
    shutil.rmtree(work, ignore_errors=True)
    return row


# ------------------------------------------------------------------ byte flips in inputs

FLIP_TARGETS = {
    "aa_trajectory_to_map": ("aa.h5", lambda f: ["map", "--aa", f, "--mapping", "ala2-heavy10", "--out", "out.h5",
                                                 "--no-progress"], "cg.h5"),
    "model_to_simulate": ("run/model.pt", lambda f: ["simulate", "--model", f, "--walkers", "2", "--steps", "200",
                                                     "--frame-interval-ps", "0.02", "--start", "cg.h5", "--platform",
                                                     "Reference", "--seed", "2", "--no-progress", "--out", "out.h5"],
                          None),
    "cg_start_to_simulate": ("cg.h5", lambda f: ["simulate", "--model", "run/model.pt", "--walkers", "2", "--steps",
                                                 "200", "--frame-interval-ps", "0.02", "--start", f, "--platform",
                                                 "Reference", "--seed", "2", "--no-progress", "--out", "out.h5"],
                             None),
}


def flip_trial(target: str, folder: Path, trial: int, rng, expected: dict) -> dict:
    source, command, _ = FLIP_TARGETS[target]
    work = folder / f"flip_{target}_{trial}"
    work.mkdir()
    (work / "run").mkdir()
    shutil.copy(folder / "run" / "model.pt", work / "run" / "model.pt")
    shutil.copy(folder / "cg.h5", work / "cg.h5")
    flipped = work / ("flipped" + Path(source).suffix)
    data = bytearray((folder / source).read_bytes())
    n_flips = int(rng.integers(1, 9))
    offsets = rng.integers(0, len(data), size=n_flips)
    for offset in offsets:
        data[int(offset)] ^= 1 << int(rng.integers(0, 8))
    flipped.write_bytes(bytes(data))
    done = dynmatch(command(flipped.name), work)
    if done.returncode == 0:
        diff = difference(positions(work / "out.h5"), expected[target])
        outcome = "unaffected" if diff == 0.0 else "silent_corruption"
    else:
        diff = None
        outcome = "clean_error" if clean_error(done) else "unclean_error"
    row = {"trial": trial, "n_flips": n_flips, "offsets": sorted(int(o) for o in offsets), "file_bytes": len(data),
           "outcome": outcome, "max_abs_diff": diff}
    if done.returncode != 0:
        row.update(returncode=done.returncode, error=error_summary(done.stderr))
    if outcome == "unclean_error":  # what the process printed before the C++ frames, for the bug report
        row["stderr_head"] = done.stderr.split("frame #0")[0][-1500:]
    shutil.rmtree(work, ignore_errors=True)
    return row


def flip_expectations(folder: Path) -> dict:
    """The outputs of the flip commands on intact inputs."""
    expected = {}
    for target, (source, command, _) in FLIP_TARGETS.items():
        work = folder / f"intact_{target}"
        work.mkdir()
        (work / "run").mkdir()
        shutil.copy(folder / "run" / "model.pt", work / "run" / "model.pt")
        shutil.copy(folder / "cg.h5", work / "cg.h5")
        shutil.copy(folder / source, work / ("flipped" + Path(source).suffix))
        _check(dynmatch(command("flipped" + Path(source).suffix), work), target)
        expected[target] = positions(work / "out.h5")
        shutil.rmtree(work, ignore_errors=True)
    return expected


def tally(rows: list, outcomes) -> dict:
    return {name: sum(row["outcome"] == name for row in rows) for name in outcomes}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs and 2 trials per case (unless --trials)")
    parser.add_argument("--trials", type=int, default=None, help="trials per case (default 5, --quick 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times and byte flips (default 0)")
    parser.add_argument("--out", help="also write the JSON document here (atomically)")
    args = parser.parse_args(argv)
    trials = args.trials if args.trials is not None else (2 if args.quick else 5)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    doc = {"benchmark": "fault_injection", "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "host": {"machine": host.machine(), "python": host.python_version(), "cpus": os.cpu_count()},
           "settings": {"trials": trials, "quick": args.quick, "seed": args.seed, "threads": 1},
           "kill": {}, "flip": {}}
    with tempfile.TemporaryDirectory(prefix="dynmatch_faults_") as tmp:
        folder = Path(tmp)
        cases = prepare(folder, args.quick)
        doc["settings"]["uninterrupted_wall_s"] = {verb: round(case["wall_s"], 2) for verb, case in cases.items()}
        kill_outcomes = ("resumed_correctly", "silent_corruption", "clean_error", "lost_data")
        for verb, case in cases.items():
            rows = [kill_trial(verb, case, folder, k, rng) for k in range(trials)]
            doc["kill"][verb] = {"counts": tally(rows, kill_outcomes),
                                 "finished_before_kill": sum(row["finished_before_kill"] for row in rows),
                                 "trials": rows}
            print(f"kill {verb}: {doc['kill'][verb]['counts']}", file=sys.stderr)
        expected = flip_expectations(folder)
        flip_outcomes = ("unaffected", "silent_corruption", "clean_error", "unclean_error")
        for target in FLIP_TARGETS:
            rows = [flip_trial(target, folder, k, rng, expected) for k in range(trials)]
            doc["flip"][target] = {"counts": tally(rows, flip_outcomes), "trials": rows}
            print(f"flip {target}: {doc['flip'][target]['counts']}", file=sys.stderr)
    doc["wall_s"] = round(time.perf_counter() - started, 1)
    if args.out:
        write_json(args.out, doc)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

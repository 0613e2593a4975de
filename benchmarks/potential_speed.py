"""Speed of the CG potential: energy + forces (forward + autograd backward) of TorchScript models.

Target: the default potential (prior + fast ``pair_mlp`` net, float32) evaluates 128 walkers of a 10-bead
chain in <= 10 ms, i.e. >= 12,800 walker-steps/s, on a 2-core CPU with the machine otherwise idle.

Cases (synthetic chains with bonds ``(i, i+1)``, harmonic bonds + angles + repulsion prior):

- ``default``: the default fast net, 10 beads, 128 and 512 walkers (and the other fast kinds, ``internal_mlp``
  at 128 and 512 walkers and ``schnet`` at 128);
- ``equivariant``: the default e3nn network, 1 and 128 walkers of 10 and 22 beads.

Usage::

    python benchmarks/potential_speed.py [--threads N] [--repeats 20] [--quick] [--nets KIND ...] [--out FILE]

Prints one JSON object (and writes it to ``--out``): per case the median and minimum seconds per call,
walker-steps per second (from the median) and, for the default case at 128 walkers, whether the target is met;
``--nets`` keeps only the cases of those net kinds (e.g. ``--quick --nets pair_mlp internal_mlp``).
On a machine shared with other jobs use ``--threads 1``: with more intra-op threads than free cores the
timings blow up by orders of magnitude (threads wait for each other).
"""
import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.models import build_potential, forces

TARGET_S = 0.010


def chain_spec(n_beads: int, net: dict) -> dict:
    """Spec of a prior + ``net`` potential for a chain of ``n_beads`` (float32)."""
    return {"n_beads": n_beads, "bonds": [[i, i + 1] for i in range(n_beads - 1)], "dtype": "float32",
            "prior": {"bond_r0_nm": 0.38, "bond_k": 1000.0, "angle_theta0_rad": 2.0, "angle_k": 50.0,
                      "repulsion_sigma_nm": 0.4},
            "net": net}


def chain_positions(n_walkers: int, n_beads: int, seed: int) -> torch.Tensor:
    """Random-walk chains, shape (n_walkers, n_beads, 3), nm, float32."""
    rng = np.random.default_rng(seed)
    return torch.tensor(np.cumsum(0.22 * rng.normal(size=(n_walkers, n_beads, 3)), axis=1), dtype=torch.float32)


def time_case(net: dict, n_beads: int, n_walkers: int, repeats: int, warmup: int = 5) -> dict:
    """Median/min seconds of energy + forces of the scripted potential after ``warmup`` calls."""
    potential = torch.jit.script(build_potential(chain_spec(n_beads, net)))
    x = chain_positions(n_walkers, n_beads, seed=0)
    for _ in range(warmup):  # the TorchScript profiling executor optimises after the first calls
        forces(potential, x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forces(potential, x)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"net": net["kind"], "n_beads": n_beads, "n_walkers": n_walkers, "median_s": median,
            "min_s": min(times), "walker_steps_per_s": n_walkers / median}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per case (default 20, 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip 512 walkers and schnet")
    parser.add_argument("--nets", nargs="+", default=None, help="only the cases of these net kinds")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 20)
    plan = []  # (kind, n_beads, n_walkers, repeats)
    for n_walkers in (128,) if args.quick else (128, 512):
        plan += [("pair_mlp", 10, n_walkers, repeats), ("internal_mlp", 10, n_walkers, repeats)]
    if not args.quick:
        plan.append(("schnet", 10, 128, repeats))
    for n_beads in (10, 22):
        for n_walkers in (1, 128):
            plan.append(("equivariant", n_beads, n_walkers, max(repeats // 4, 3)))
    cases = [time_case({"kind": kind}, n_beads, n_walkers, reps) for kind, n_beads, n_walkers, reps in plan
             if args.nets is None or kind in args.nets]
    default = next((case for case in cases if case["net"] == "pair_mlp"), None)
    result = {
        "benchmark": "potential_speed", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "target_s_128_walkers_10_beads": TARGET_S,
        "default_meets_target": None if default is None else default["median_s"] <= TARGET_S, "cases": cases,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""AA reference MD throughput (steps/s, ns/day at a 2 fs step) of every built-in system on Reference and CPU.

    python benchmarks/aa_throughput.py --out aa_throughput.json
"""
import argparse
import json

from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.openmm.reference import measure_throughput
from openmm_dynmatch.openmm.aa_systems import get_system

STEPS = {"alanine-dipeptide-implicit": 20000, "lj-dimer-solvent": 4000, "alanine-dipeptide-explicit": 300}


def run(scale: float = 1.0) -> list:
    results = []
    for name, n_steps in STEPS.items():
        system = get_system(name)
        for platform in ("Reference", "CPU"):
            steps = max(int(n_steps * scale), 10)
            if name == "alanine-dipeptide-explicit" and platform == "Reference":
                steps = max(steps // 10, 10)  # ~20 steps/s: keep it short
            measured = measure_throughput(system, platform, steps)
            results.append({"system": name, "platform": platform, "n_steps": steps,
                            "steps_per_s": measured["steps_per_s"], "ns_per_day": measured["ns_per_day"]})
            print(json.dumps(results[-1]), flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of timed steps")
    parser.add_argument("--out", help="also write the JSON list here")
    args = parser.parse_args(argv)
    results = run(args.scale)
    if args.out:
        write_json(args.out, {"benchmark": "aa_throughput", "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Speed of the OpenMM CG engine: walker-steps per second, and the path recorder's overhead.

For a 10-bead and a 22-bead model of the production shape (a pair MLP on radial-basis features of all
inter-bead distances plus harmonic bonds, float32) and B walkers, compares on each CPU-side platform:

- ``batched``: one System of B walkers, one TorchForce (the engine of this package);
- ``context_per_walker``: one Context per walker, stepped in turn (measured on up to 16 walkers; the cost
  per walker-step does not depend on B);
- ``torch_loop``: the same TorchScript model in a hand-written LangevinMiddle loop in PyTorch (forces by
  autograd), B walkers in one batch;
- ``recorder``: :func:`openmm_dynmatch.openmm.recorder.record_paths` (positions read after every step)
  against plain ``integrator.step(n)`` on the same Context.

Prints one JSON document. ``--quick`` runs few steps and fewer sizes (numbers are rough on a shared machine).

    python benchmarks/engine_speed.py --quick > engine_speed.json
"""
import argparse
import json
import math
import platform as host
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import openmm
from openmm_dynmatch.openmm.export import export, load_exported
from openmm_dynmatch.openmm.recorder import maxwell_boltzmann, record_paths
from openmm_dynmatch.openmm.system import available_platforms, create_system

KT_300 = 0.00831446261815324 * 300.0


class PairMLPChain(torch.nn.Module):
    """Harmonic bonds along a chain plus an MLP of Gaussian radial features summed over all bead pairs."""

    def __init__(self, n_beads: int, n_rbf: int = 16, width: int = 32, cutoff_nm: float = 1.2):
        super().__init__()
        pairs = torch.triu_indices(n_beads, n_beads, offset=1)
        self.register_buffer("pair_i", pairs[0])
        self.register_buffer("pair_j", pairs[1])
        self.register_buffer("centres", torch.linspace(0.0, cutoff_nm, n_rbf))
        self.register_buffer("k_bond", torch.tensor(1000.0))
        self.r0 = 0.38
        self.cutoff_nm = cutoff_nm
        self.width_rbf = cutoff_nm / n_rbf
        self.mlp = torch.nn.Sequential(torch.nn.Linear(n_rbf, width), torch.nn.SiLU(), torch.nn.Linear(width, width),
                                       torch.nn.SiLU(), torch.nn.Linear(width, 1))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        x = positions.to(self.k_bond.dtype)
        bond = torch.linalg.norm(x[:, 1:] - x[:, :-1], dim=-1)
        prior = 0.5 * (self.k_bond * (bond - self.r0) ** 2).sum(-1)
        r = torch.linalg.norm(x[:, self.pair_j] - x[:, self.pair_i], dim=-1)
        features = torch.exp(-((r.unsqueeze(-1) - self.centres) / self.width_rbf) ** 2)
        envelope = 0.5 * (torch.cos(math.pi * torch.clamp(r / self.cutoff_nm, max=1.0)) + 1.0)
        return prior + 0.1 * (self.mlp(features).squeeze(-1) * envelope).sum(-1)


def chain_positions(n_walkers: int, n_beads: int, seed: int = 0) -> np.ndarray:
    index = np.arange(n_beads)
    base = np.stack([0.34 * index, 0.15 * (index % 2), np.zeros(n_beads)], axis=1)
    return base[None] + 0.01 * np.random.default_rng(seed).standard_normal((n_walkers, n_beads, 3))


def metadata(n_beads: int) -> dict:
    return {"n_beads": n_beads, "bead_names": [f"B{i}" for i in range(n_beads)], "bead_types": [0] * n_beads,
            "type_names": ["C"], "masses_amu": [14.0] * n_beads, "temperature_k": 300.0, "integrator": "langevin",
            "friction_per_ps": 1.0, "timestep_ps": 0.002, "cutoff_nm": 1.2, "periodic": False,
            "bonds": [[i, i + 1] for i in range(n_beads - 1)]}


def timed(function, n_steps: int, n_walkers: int) -> float:
    """Walker-steps per second of ``function(n_steps)``, after a warm-up (TorchScript optimises its graph on
    the first few calls of every loaded module)."""
    function(max(5, n_steps // 5))
    start = time.perf_counter()
    function(n_steps)
    return n_walkers * n_steps / (time.perf_counter() - start)


def batched_speed(model_path, n_walkers, n_beads, platform, n_steps) -> float:
    cg = create_system(model_path, n_walkers, platform=platform, seed=1)
    cg.context.setPositions(chain_positions(n_walkers, n_beads).reshape(-1, 3))
    cg.context.setVelocitiesToTemperature(300.0, 1)
    return timed(cg.integrator.step, n_steps, n_walkers)


def per_walker_speed(model_path, n_walkers, n_beads, platform, n_steps) -> float:
    systems = [create_system(model_path, 1, platform=platform, seed=1 + w) for w in range(min(n_walkers, 16))]
    for w, cg in enumerate(systems):
        cg.context.setPositions(chain_positions(1, n_beads, seed=w)[0])
        cg.context.setVelocitiesToTemperature(300.0, 1 + w)

    def step(n):
        for cg in systems:
            cg.integrator.step(n)

    return timed(step, max(5, n_steps // len(systems)), len(systems))


def torch_loop_speed(model_path, n_walkers, n_beads, n_steps) -> float:
    """LangevinMiddle in PyTorch with the exported module, float64 state like OpenMM's Reference platform."""
    module = load_exported(model_path)
    masses = torch.full((1, n_beads, 1), 14.0, dtype=torch.float64)
    dt, a = 0.002, math.exp(-1.0 * 0.002)
    noise_scale = torch.sqrt(KT_300 * (1 - a * a) / masses)
    x = torch.tensor(chain_positions(n_walkers, n_beads))
    v = torch.tensor(maxwell_boltzmann([14.0] * n_beads, n_walkers, 300.0, seed=1))
    generator = torch.Generator().manual_seed(1)

    def step(n):
        nonlocal x, v
        for _ in range(n):
            positions = x.reshape(-1, 3).requires_grad_(True)
            (grad,) = torch.autograd.grad(module(positions), positions)
            v = v - dt * grad.reshape(x.shape) / masses
            x = x + 0.5 * dt * v
            v = a * v + noise_scale * torch.randn(x.shape, dtype=x.dtype, generator=generator)
            x = (x + 0.5 * dt * v).detach()

    return timed(step, n_steps, n_walkers)


def recorder_overhead(model_path, n_walkers, n_beads, platform, n_steps) -> dict:
    cg = create_system(model_path, n_walkers, platform=platform, seed=1)
    start = chain_positions(n_walkers, n_beads)
    record_paths(cg, start, 10, seed=0)
    cg.integrator.step(10)
    begin = time.perf_counter()
    record_paths(cg, start, n_steps, seed=0)
    recorded = time.perf_counter() - begin
    cg.context.setPositions(start.reshape(-1, 3))
    begin = time.perf_counter()
    cg.integrator.step(n_steps)
    plain = time.perf_counter() - begin
    return {"n_walkers": n_walkers, "n_steps": n_steps, "record_paths_s": recorded, "plain_step_s": plain,
            "overhead_ratio": recorded / plain}


def run(quick: bool) -> dict:
    sizes = (10, 22)
    walker_counts = (1, 16, 128) if quick else (1, 16, 128, 512)
    platforms = [p for p in ("Reference", "CPU") if p in available_platforms()]
    budget = 100 if quick else 4000  # steps per measurement: budget / sqrt(B), at least 10
    results = {"host": host.platform(), "torch_threads": torch.get_num_threads(), "openmm": openmm.__version__,
               "quick": quick, "speeds_walker_steps_per_s": [], "recorder": []}
    with tempfile.TemporaryDirectory() as folder:
        for n_beads in sizes:
            torch.manual_seed(0)
            model_path = export(PairMLPChain(n_beads), Path(folder) / f"chain{n_beads}.pt", metadata(n_beads))
            for n_walkers in walker_counts:
                n_steps = max(10, int(budget / math.sqrt(n_walkers)))
                row = {"n_beads": n_beads, "n_walkers": n_walkers, "n_steps": n_steps,
                       "torch_loop": torch_loop_speed(model_path, n_walkers, n_beads, n_steps)}
                for platform in platforms:
                    row[f"batched_{platform}"] = batched_speed(model_path, n_walkers, n_beads, platform, n_steps)
                    row[f"context_per_walker_{platform}"] = per_walker_speed(model_path, n_walkers, n_beads,
                                                                           platform, n_steps)
                results["speeds_walker_steps_per_s"].append(row)
            for n_walkers in (16, 128):
                entry = recorder_overhead(model_path, n_walkers, n_beads, "Reference", 20 if quick else 300)
                results["recorder"].append(dict(entry, n_beads=n_beads, platform="Reference"))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Walker-steps/s of the OpenMM CG engine (JSON on stdout).")
    parser.add_argument("--quick", action="store_true", help="few steps, B up to 128")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

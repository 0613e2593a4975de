"""CG production speed of the OpenMM engine against AA MD of the same molecule, measured in one run.

The molecule is alanine dipeptide. All numbers below come from the same process on the same machine, so the
CG/AA ratios do not mix machines.

AA reference (``"aa"``)
    :func:`openmm_dynmatch.openmm.reference.measure_throughput` of ``alanine-dipeptide-implicit`` and
    ``alanine-dipeptide-explicit`` (2 fs Langevin steps, HBonds constraints) on every OpenMM platform present:
    ``steps_per_s`` and ``ns_per_day`` of one trajectory.

CG models (``"models"``)
    A 20 ps AA implicit-solvent trajectory (1 fs steps, no constraints, forces saved) is mapped with the built-in
    ``ala2-heavy10`` mapping; a configuration with ``data.cg_path`` set to it goes through the training code
    path (:func:`~openmm_dynmatch.runs.load_training_data`, :func:`~openmm_dynmatch.runs.build_potential_from_config`,
    :func:`~openmm_dynmatch.runs.model_metadata`) for the networks ``pair_mlp`` and ``equivariant``
    (NequIP-style, e3nn), or those ``--models`` names (also ``internal_mlp``, the package's default, and
    ``ensemble4``, the mean of four of them), and the result is exported. The networks keep their seeded
    initial weights (the prior is fitted by Boltzmann inversion): speed does not depend on training. Walkers
    start from mapped AA frames. Dynamics (integrator, masses, friction, time step) are the exported model's.

CG speed (``"cg"``, one row per model, walker count B and method)
    - ``batched_<platform>``: one System of B walkers with one TorchForce
      (:func:`openmm_dynmatch.openmm.cg_walkers.create_system`), the engine of this package;
    - ``context_per_walker_<platform>``: one single-walker Context per walker, stepped in turn. Measured on
      ``min(B, 16)`` Contexts: the cost of a walker-step does not depend on B, so rows with B > 16 repeat the
      16-Context measurement (``measured_walkers`` says on how many it was taken);
    - ``torch_loop``: the exported TorchScript module in a hand-written LangevinMiddle loop in PyTorch (forces
      by autograd, float64 state like OpenMM's Reference platform), B walkers in one batch, same dynamics;
    - with CUDA: ``batched_CUDA`` / ``context_per_walker_CUDA`` without and ``..._CUDA_graphs`` with
      openmm-torch's CUDA graphs, and ``torch_loop_cuda`` (float32 state on the GPU).

    Each row has ``walker_steps_per_s`` (walker-steps per wall-clock second; the timed run is sized from a
    probe to take about ``settings.target_seconds``, after a warm-up), ``ns_per_day`` (aggregate over walkers:
    ``walker_steps_per_s * timestep_ps * 86400 / 1000``), ``ns_per_day_per_walker`` (``ns_per_day / B``) and
    ``finite`` (positions finite after the timed run).

Recorder overhead (``"recorder"``)
    :func:`openmm_dynmatch.openmm.recorder.record_paths` (positions read after every step) against plain
    ``integrator.step(n)`` on the same Context, pair-MLP model, Reference platform.

Summary (``"summary"``)
    Per model and B >= 128: ``batched / torch_loop`` and ``batched / context_per_walker`` per platform and for
    the best batched platform; the CG speed-up, best batched aggregate ns/day over the best AA ns/day of each
    solvent, and the best per-walker CG ns/day over the same; and whether each target is met: batched within
    10% of the torch loop, batched >= 8x one Context per walker (both at every B >= 128), CG >= 100x AA
    explicit solvent.

Usage (JSON on stdout, one summary line on stderr)::

    python benchmarks/engine.py --quick
    python benchmarks/engine.py --out benchmarks/results/engine.json
    python benchmarks/engine.py --quick --platforms CUDA --threads 8   # a GPU machine, GPU rows only
"""
import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform as host
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import openmm
import openmmtorch
from tqdm import tqdm

from openmm_dynmatch.config import Config, DataConfig, PotentialConfig
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.mapping import map_trajectory
from openmm_dynmatch.openmm.export import export, load_exported
from openmm_dynmatch.openmm.recorder import maxwell_boltzmann, record_paths
from openmm_dynmatch.openmm.reference import measure_throughput, run_reference
from openmm_dynmatch.openmm.cg_walkers import available_platforms, create_system
from openmm_dynmatch.openmm.aa_systems import get_system
from openmm_dynmatch.runs import build_potential_from_config, load_training_data, model_metadata
from openmm_dynmatch.units import kt_kj_per_mol

#: Models the benchmark can measure: name -> ``potential`` configuration (kind and network options).
MODEL_SPECS = {
    "pair_mlp": {"kind": "pair_mlp"},
    "equivariant": {"kind": "equivariant"},
    "internal_mlp": {"kind": "internal_mlp"},
    "ensemble4": {"kind": "ensemble", "net": {"member": {"kind": "internal_mlp"}, "size": 4}},
}
MODELS = ("pair_mlp", "equivariant")  # measured unless --models names others
AA_SYSTEMS = ("alanine-dipeptide-implicit", "alanine-dipeptide-explicit")
MAX_CONTEXTS = 16
MODES = {  # walker counts, seconds per timed run, steps of the recorder comparison
    "quick": {"walkers": (1, 16, 128), "target_seconds": 0.25, "recorder_steps": 20},
    "default": {"walkers": (1, 4, 16, 64, 128, 512), "target_seconds": 1.5, "recorder_steps": 200},
    "full": {"walkers": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), "target_seconds": 6.0,
             "recorder_steps": 1000},
}


def timed_rate(step, n_walkers: int, target_seconds: float) -> dict:
    """Walker-steps per second of ``step(n)`` (``n`` steps of ``n_walkers`` walkers, synchronised on return).

    Eight warm-up steps (TorchScript profiles and optimises its graph on the first few calls of a loaded module),
    then probes of 1, 4, 16, ... steps until one takes a tenth of ``target_seconds``, then one timed run sized
    from the probe to take about ``target_seconds``.
    """
    step(8)
    n_probe, seconds = 1, 0.0
    while True:
        begin = time.perf_counter()
        step(n_probe)
        seconds = time.perf_counter() - begin
        if seconds >= 0.1 * target_seconds:
            break
        n_probe *= 4
    n_steps = max(2, round(target_seconds * n_probe / seconds))
    begin = time.perf_counter()
    step(n_steps)
    seconds = time.perf_counter() - begin
    return {"n_steps": n_steps, "seconds": seconds, "walker_steps_per_s": n_walkers * n_steps / seconds}


def aa_throughput(platforms, target_seconds: float, bar) -> list:
    """Steps/s and ns/day of one AA trajectory per system and OpenMM platform; a probe sizes the timed run."""
    rows = []
    for name in AA_SYSTEMS:
        system = get_system(name)
        for platform in platforms:
            bar.set_postfix_str(f"AA {name} {platform}")
            probe = measure_throughput(system, platform, 5 if "explicit" in name else 50)
            n_steps = max(10, round(target_seconds * probe["steps_per_s"]))
            measured = probe if probe["seconds"] >= 0.5 * target_seconds else measure_throughput(
                system, platform, n_steps)
            rows.append({key: measured[key] for key in ("system", "platform", "n_atoms", "n_steps", "seconds",
                                                        "steps_per_s", "ns_per_day")})
            bar.update(1)
    return rows


def build_models(folder: Path, names=MODELS) -> dict:
    """Export the ala2 CG models ``names`` (keys of :data:`MODEL_SPECS`) through the training code path; returns
    per name its file, metadata, info and the mapped AA frames ``(n_frames, n_beads, 3)`` nm the walkers start
    from."""
    begin = time.perf_counter()
    aa_path, cg_path = folder / "aa.h5", folder / "cg.h5"
    run_reference(get_system("alanine-dipeptide-implicit", constraints=None), aa_path, ns=0.02,
                  frame_interval_ps=0.1, timestep_ps=0.001, save_forces=True, seed=0, platform="Reference",
                  progress=False, equilibration_ps=1.0)
    map_trajectory(aa_path, "ala2-heavy10", cg_path, progress=False)
    data_seconds = time.perf_counter() - begin
    models = {}
    for kind in names:
        begin = time.perf_counter()
        config = Config(data=DataConfig(cg_path=str(cg_path)), potential=PotentialConfig(**MODEL_SPECS[kind]))
        data = load_training_data(config)
        torch.manual_seed(config.train.seed)
        potential = build_potential_from_config(config, data)
        dynamics = DynamicsParameters(config.dynamics.integrator, config.dynamics.friction_per_ps,
                                      data.metadata["bead_types"], learnable=False)
        metadata = model_metadata(data, config, dynamics)
        potential.eval()
        path = export(potential, folder / f"{kind}.pt", metadata)
        info = {"n_beads": metadata["n_beads"], "n_parameters": sum(p.numel() for p in potential.parameters()),
                "net": potential.net.spec if hasattr(potential.net, "spec") else kind,
                "dtype": config.potential.dtype, "integrator": metadata["integrator"],
                "timestep_ps": metadata["timestep_ps"], "friction_per_ps": metadata["friction_per_ps"],
                "temperature_k": metadata["temperature_k"], "masses_amu": metadata["masses_amu"],
                "weights": "untrained network (seeded initial weights) plus Boltzmann-inverted prior; speed only",
                "start_frames": f"{len(data.frames)} mapped AA frames (ala2-heavy10) of a 20 ps implicit run",
                "data_seconds": data_seconds, "build_export_seconds": time.perf_counter() - begin}
        models[kind] = {"name": kind, "path": path, "metadata": metadata, "info": info, "frames": data.frames}
    return models


def start_positions(frames: np.ndarray, n_walkers: int, offset: int = 0) -> np.ndarray:
    """Walker start positions ``(n_walkers, n_beads, 3)`` nm: mapped AA frames taken in turn."""
    return frames[(offset + np.arange(n_walkers)) % len(frames)]


def _openmm_stepper(systems):
    """``step(n)``: ``n`` steps of each CGSystem in turn, then wait for the last one (GPUs run asynchronously)."""
    def step(n):
        for cg in systems:
            cg.integrator.step(n)
        systems[-1].context.getState(getPositions=True)
    return step


def _finite(systems) -> bool:
    return all(np.isfinite(cg.context.getState(getPositions=True).getPositions(asNumpy=True)._value).all()
               for cg in systems)


def openmm_rate(model: dict, n_walkers: int, n_contexts: int, platform: str, target_seconds: float) -> dict:
    """Walker-steps/s of ``n_contexts`` Contexts of ``n_walkers`` walkers each on ``platform``
    (``CUDA_graphs``: CUDA with openmm-torch's CUDA graphs)."""
    name, graphs = ("CUDA", True) if platform == "CUDA_graphs" else (platform, False)
    temperature = model["metadata"]["temperature_k"]
    systems = []
    for index in range(n_contexts):
        cg = create_system(model["path"], n_walkers, platform=name, use_cuda_graphs=graphs, seed=1 + index)
        start = start_positions(model["frames"], n_walkers, offset=index)
        cg.context.setPositions(start.reshape(-1, 3))
        cg.context.setVelocitiesToTemperature(temperature, 1 + index)
        systems.append(cg)
    result = timed_rate(_openmm_stepper(systems), n_walkers * n_contexts, target_seconds)
    return dict(result, finite=_finite(systems))


def torch_loop_rate(model: dict, n_walkers: int, target_seconds: float, device: str = "cpu") -> dict:
    """Walker-steps/s of LangevinMiddle written in PyTorch around the exported module, B walkers in one batch
    (float64 state on the CPU, like OpenMM's Reference platform; float32 on a GPU)."""
    meta = model["metadata"]
    module = load_exported(model["path"]).to(device)
    dtype = torch.float64 if device == "cpu" else torch.float32
    masses = torch.tensor(meta["masses_amu"], dtype=dtype, device=device)[None, :, None]
    dt, a = meta["timestep_ps"], math.exp(-meta["friction_per_ps"] * meta["timestep_ps"])
    noise_scale = torch.sqrt(kt_kj_per_mol(meta["temperature_k"]) * (1 - a * a) / masses)
    x = torch.tensor(start_positions(model["frames"], n_walkers), dtype=dtype, device=device)
    v = torch.tensor(maxwell_boltzmann(meta["masses_amu"], n_walkers, meta["temperature_k"], seed=1),
                     dtype=dtype, device=device)
    generator = torch.Generator(device=device).manual_seed(1)

    def step(n):
        nonlocal x, v
        for _ in range(n):
            positions = x.reshape(-1, 3).requires_grad_(True)
            (grad,) = torch.autograd.grad(module(positions), positions)
            v = v - dt * grad.reshape(x.shape) / masses
            x = x + 0.5 * dt * v
            v = a * v + noise_scale * torch.randn(x.shape, dtype=dtype, device=device, generator=generator)
            x = (x + 0.5 * dt * v).detach()
        if device != "cpu":
            torch.cuda.synchronize()

    result = timed_rate(step, n_walkers, target_seconds)
    return dict(result, finite=bool(torch.isfinite(x).all()))


def cg_methods(platforms) -> list:
    """``(key, method, platform)`` of every CG measurement for the platforms present."""
    methods = [("torch_loop", "torch_loop", "cpu")]
    if "CUDA" in platforms and torch.cuda.is_available():
        methods.append(("torch_loop_cuda", "torch_loop", "cuda"))
    openmm_platforms = [p for p in platforms if p != "CUDA"] + (["CUDA", "CUDA_graphs"] if "CUDA" in platforms
                                                                else [])
    for platform in openmm_platforms:
        methods += [(f"batched_{platform}", "batched", platform),
                    (f"context_per_walker_{platform}", "context_per_walker", platform)]
    return methods


def cg_speeds(models: dict, platforms, walker_counts, target_seconds: float, bar) -> list:
    """One row per model, walker count and method (see the module docstring)."""
    rows, per_walker_cache = [], {}
    for kind, model in models.items():
        timestep = model["metadata"]["timestep_ps"]
        for n_walkers in walker_counts:
            for key, method, platform in cg_methods(platforms):
                bar.set_postfix_str(f"{kind} B={n_walkers} {key}")
                n_contexts = min(n_walkers, MAX_CONTEXTS)
                if method == "torch_loop":
                    result = torch_loop_rate(model, n_walkers, target_seconds, platform)
                elif method == "batched":
                    result = openmm_rate(model, n_walkers, 1, platform, target_seconds)
                else:
                    cache_key = (kind, platform, n_contexts)
                    if cache_key not in per_walker_cache:
                        per_walker_cache[cache_key] = openmm_rate(model, 1, n_contexts, platform, target_seconds)
                    result = per_walker_cache[cache_key]
                rate = result["walker_steps_per_s"]
                rows.append(dict(result, model=kind, n_walkers=n_walkers, key=key, method=method,
                                 platform=platform, measured_walkers=n_contexts if method == "context_per_walker"
                                 else n_walkers, ns_per_day=rate * timestep * 86.4,
                                 ns_per_day_per_walker=rate * timestep * 86.4 / n_walkers))
                bar.update(1)
    return rows


def recorder_overhead(model: dict, n_walkers: int, n_steps: int) -> dict:
    """Wall time of ``record_paths`` against plain ``integrator.step`` for the same steps (Reference)."""
    cg = create_system(model["path"], n_walkers, platform="Reference", seed=1)
    start = start_positions(model["frames"], n_walkers)
    record_paths(cg, start, 10, seed=0)
    cg.integrator.step(10)
    begin = time.perf_counter()
    record_paths(cg, start, n_steps, seed=0)
    recorded = time.perf_counter() - begin
    cg.context.setPositions(start.reshape(-1, 3))
    begin = time.perf_counter()
    cg.integrator.step(n_steps)
    plain = time.perf_counter() - begin
    return {"model": model["name"], "platform": "Reference", "n_walkers": n_walkers, "n_steps": n_steps,
            "record_paths_s": recorded, "plain_step_s": plain, "overhead_ratio": recorded / plain}


def _ratios(rows: list) -> dict:
    """Batched against the torch loop and against one Context per walker, at one model and walker count."""
    rate = {row["key"]: row["walker_steps_per_s"] for row in rows}
    batched = {key[len("batched_"):]: value for key, value in rate.items() if key.startswith("batched_")}
    loops = [value for key, value in rate.items() if key.startswith("torch_loop")]
    per_platform = {}
    for platform, value in batched.items():
        loop = rate.get("torch_loop_cuda", rate["torch_loop"]) if platform.startswith("CUDA") else rate["torch_loop"]
        per_platform[platform] = {"vs_torch_loop": value / loop,
                                  "vs_context_per_walker": value / rate[f"context_per_walker_{platform}"]}
    best = max(batched, key=batched.get)
    best_context = max(value for key, value in rate.items() if key.startswith("context_per_walker_"))
    result = {"best_batched_platform": best, "best_batched_walker_steps_per_s": batched[best],
              "best_vs_torch_loop": batched[best] / max(loops),
              "best_vs_context_per_walker": batched[best] / best_context, "per_platform": per_platform}
    result["within_10pct_of_torch_loop"] = result["best_vs_torch_loop"] >= 0.9
    result["ge_8x_context_per_walker"] = result["best_vs_context_per_walker"] >= 8.0
    return result


def summarise(cg_rows: list, aa_rows: list) -> dict:
    """Derived ratios and the targets of the issue (see the module docstring)."""
    best_aa = {name: max(r["ns_per_day"] for r in aa_rows if r["system"] == name) for name in AA_SYSTEMS}
    summary = {"best_aa_ns_per_day": best_aa, "models": {}}
    for kind in dict.fromkeys(r["model"] for r in cg_rows):
        rows = [r for r in cg_rows if r["model"] == kind]
        large = sorted({r["n_walkers"] for r in rows if r["n_walkers"] >= 128})
        at = {str(b): _ratios([r for r in rows if r["n_walkers"] == b]) for b in large}
        batched = [r for r in rows if r["method"] == "batched"]
        best = max(batched, key=lambda r: r["ns_per_day"])
        per_walker = max(r["ns_per_day_per_walker"] for r in batched)
        speedup = {f"vs_{name.rsplit('-', 1)[1]}": best["ns_per_day"] / best_aa[name] for name in AA_SYSTEMS}
        summary["models"][kind] = {
            "at_walkers": at, "best_cg_ns_per_day": best["ns_per_day"],
            "best_cg_at": {"n_walkers": best["n_walkers"], "key": best["key"]},
            "cg_speedup_aggregate": speedup,
            "cg_speedup_per_walker": {key: per_walker / best_aa[name] for key, name in
                                      zip(speedup, AA_SYSTEMS)},
            "targets": {"batched_within_10pct_of_torch_loop_at_B_ge_128":
                        bool(at) and all(v["within_10pct_of_torch_loop"] for v in at.values()),
                        "batched_ge_8x_context_per_walker_at_B_ge_128":
                        bool(at) and all(v["ge_8x_context_per_walker"] for v in at.values()),
                        "cg_ge_100x_aa_explicit": speedup["vs_explicit"] >= 100.0}}
    summary["all_targets_met"] = all(all(m["targets"].values()) for m in summary["models"].values())
    return summary


def summary_line(summary: dict) -> str:
    """One human line: per model, the batched speed at the smallest B >= 128 and the CG/AA-explicit ratio."""
    parts = []
    for kind, entry in summary["models"].items():
        if not entry["at_walkers"]:
            continue
        b, ratios = next(iter(entry["at_walkers"].items()))
        parts.append(f"{kind} B={b} batched {ratios['best_batched_walker_steps_per_s'] / 1e3:.1f}k walker-steps/s "
                     f"= {ratios['best_vs_context_per_walker']:.1f}x per-walker Context, "
                     f"{ratios['best_vs_torch_loop']:.2f}x torch loop; "
                     f"CG/AA-explicit {entry['cg_speedup_aggregate']['vs_explicit']:.0f}x")
    return "engine: " + " | ".join(parts)


def environment(mode: str, settings: dict, threads: int, platforms) -> dict:
    """Host, date, versions and settings recorded with the results."""
    versions = {"python": host.python_version(), "torch": torch.__version__, "openmm": openmm.__version__}
    for package in ("openmmtorch", "acellera-openmmtorch-cu13", "e3nn"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"host": {"platform": host.platform(), "machine": host.machine(), "processor": host.processor(),
                     "cpu_count": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
                     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions,
            "settings": dict(settings, mode=mode, threads_requested=threads, torch_threads=torch.get_num_threads(),
                             openmm_platforms=list(platforms), max_contexts=MAX_CONTEXTS,
                             cuda_graphs_supported=hasattr(openmmtorch.TorchForce, "setProperty"))}


def run(mode: str = "default", threads: int = 2, only_platforms=None, walkers=None, models=MODELS) -> dict:
    """Measure everything (see the module docstring) and return the JSON document; ``only_platforms`` limits the
    OpenMM platforms measured (default: each of Reference, CPU and CUDA that is present), ``walkers`` replaces the
    mode's walker counts, ``models`` names the CG models (keys of :data:`MODEL_SPECS`; the recorder overhead is
    measured on the first)."""
    unknown = [name for name in models if name not in MODEL_SPECS]
    if unknown or not models:
        raise ValueError(f"--models: expected names among {sorted(MODEL_SPECS)}, got {list(models)}")
    torch.set_num_threads(threads)
    settings = dict(MODES[mode])
    if walkers:
        if any(int(b) < 1 for b in walkers):
            raise ValueError(f"--walkers: walker counts must be positive, got {list(walkers)}")
        settings["walkers"] = tuple(int(b) for b in walkers)
    platforms = [p for p in ("Reference", "CPU", "CUDA") if p in available_platforms()]
    if only_platforms:
        missing = sorted(set(only_platforms) - set(platforms))
        if missing:
            raise ValueError(f"--platforms: {missing} not among the platforms present here, {platforms}")
        platforms = [p for p in platforms if p in only_platforms]
    n_cg = len(models) * len(settings["walkers"]) * len(cg_methods(platforms))
    doc = {"benchmark": "engine", "schema_version": 1, **environment(mode, settings, threads, platforms)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, tqdm(total=len(AA_SYSTEMS) * len(platforms) + n_cg + 2,
                                                       desc="engine", file=sys.stderr) as bar:
        doc["aa"] = aa_throughput(platforms, settings["target_seconds"], bar)
        bar.set_postfix_str("building the CG models")
        built = build_models(Path(folder), models)
        doc["models"] = {kind: model["info"] for kind, model in built.items()}
        doc["cg"] = cg_speeds(built, platforms, settings["walkers"], settings["target_seconds"], bar)
        doc["recorder"] = []
        for n_walkers in (16, 128):
            bar.set_postfix_str(f"recorder B={n_walkers}")
            doc["recorder"].append(recorder_overhead(built[models[0]], n_walkers, settings["recorder_steps"]))
            bar.update(1)
    doc["summary"] = summarise(doc["cg"], doc["aa"])
    doc["wall_seconds"] = time.perf_counter() - started
    doc["host"]["load_average_at_end"] = list(os.getloadavg())
    return doc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="B in (1, 16, 128), short timed runs (rough numbers)")
    speed.add_argument("--full", action="store_true", help="more walker counts, ~6 s timed runs")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--out", help="also write the JSON document here (atomically)")
    parser.add_argument("--platforms", nargs="+", choices=("Reference", "CPU", "CUDA"),
                        help="measure only these OpenMM platforms (default: all present)")
    parser.add_argument("--walkers", type=int, nargs="+", metavar="B",
                        help="walker counts to measure (default: the mode's, e.g. 1 4 16 64 128 512)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="NAME",
                        help=f"CG models to measure, among {', '.join(MODEL_SPECS)} (ensemble4: four internal_mlp "
                             f"networks; default: {' '.join(MODELS)})")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be a positive integer, got {args.threads}")
    try:
        doc = run("quick" if args.quick else "full" if args.full else "default", args.threads, args.platforms,
                  args.walkers, args.models)
    except ValueError as error:
        parser.error(str(error))
    if args.out:
        write_json(args.out, doc)
    print(json.dumps(doc, indent=2))
    print(summary_line(doc["summary"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

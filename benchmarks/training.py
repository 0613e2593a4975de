"""Cost of one dynamic-matching training iteration: OpenMM sampling, classifier update, estimator, memory.

Every case builds a synthetic CG bead chain (bonds ``i, i+1``) and a complete
:class:`openmm_dynmatch.train.DynamicMatchingTrainer` by hand:

- potential: ``models.potential.build_potential`` with its default network (prior + ``pair_mlp``) and a
  :class:`~openmm_dynmatch.models.prior.PriorPotential` of harmonic chain bonds given through the spec;
- dynamics: :class:`~openmm_dynmatch.dynamics.DynamicsParameters` (Langevin, learnable friction);
- sampler: :class:`~openmm_dynmatch.openmm.sampler.OpenMMSampler` (Reference platform) with the chain's
  exported-model metadata;
- "AA" windows: recorded by the same sampler from the initial model after a short equilibration (only their
  shape matters for the cost);
- classifier: ``--classifier equivariant|invariant``; by default (``auto``) the equivariant window classifier
  for up to 22 beads and the invariant one above (the JSON row says which one ran); ``--members K``: an ensemble
  of K of them (``classifier.members``, docs/classifier.md).

Windows have ``T + 1 = 6`` frames; the integration steps per window ``n`` set ``steps_per_frame = n / 5``.
Each case runs one warm-up ``trainer.step()`` (TorchScript optimises on its first calls), then ``--repeats``
timed steps (``classifier_warmup = 0`` so the generator update runs, ``snr_every = 0``), and reports the median
of the trainer's own ``time_sampling_s`` (OpenMM, every step recorded, including the per-call export of the
model), ``time_classifier_s`` (``classifier_steps`` Adam updates plus the evaluation) and ``time_estimator_s``
(rewards, path log-likelihood with its double-backward through the forces, one Adam step) and
``time_friction_runs_s`` (the two extra OpenMM runs of the friction's common-random-number gradient,
``train.friction_gradient: crn``, the default; sampling cost, counted apart from the estimator).

``sampling_breakdown_s`` then splits one sampling call into its parts, each timed alone (median of up to three):
``export_s`` (refresh the scripted copy's weights and write the TorchScript file), ``context_s`` (new System and
Context of all walkers), ``first_steps_s`` (its first three steps, where TorchScript optimises the freshly loaded
module), ``integrate_s`` (plain ``integrator.step(n)``), ``record_s`` (the same window with the
positions read after every step) and ``recording_overhead_s = record_s - integrate_s``.

Memory, two numbers per case:

- ``rss_peak_mib``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the case, the resident-set high-water
  mark of the whole process so far (everything: torch, OpenMM, numpy). It never decreases, so a case's own
  need shows only where it exceeds the earlier cases'; run a single case (``--case``) for a clean figure.
- ``tracemalloc_peak_mib``: the peak of ``tracemalloc`` during one extra step after the timed ones (so its
  overhead does not enter the timings); it traces Python objects and numpy buffers (the recorded OpenMM paths),
  not the memory torch allocates for its tensors.

``paths_mib`` is the size of the recorded positions, ``B (n + 1) N 3`` float64.

The cases form three series: walkers 16/64/256 (10 beads, ``n = 50``), window length 20/50/150 steps
(10 beads, 64 walkers), and beads 10/22/50/100/200 (4 walkers, ``n = 10``; the 50- to 200-bead chains are the
synthetic large molecules). The bead series is small on purpose: the estimator keeps the autograd graph of the
pair network's forces for every recorded frame, about 3 kB per (frame, bead pair), so 16 walkers of 50 steps
of the 200-bead chain would need some 50 GB; ``B (n + 1) N (N - 1) / 2`` is the number to keep in mind.

``--quick`` runs two tiny cases (well under two minutes); the default is sized to
finish in under 20 minutes on two CPU cores with ``--threads 1`` (one run took 2.6 minutes on a two-core
machine that others were using) and needs about 3.5 GB of memory at its peak (the 200-bead case).

``--estimator-chunk k`` builds the likelihood's graph for ``k`` walkers at a time (``train.estimator_chunk``):
the same gradient, with the estimator's memory bounded by ``k`` instead of the walker count. The default, -1,
is the trainer's automatic size (:func:`openmm_dynmatch.updates.walkers_per_pass`), recorded per case as
``estimator_chunk_walkers``.

Usage::

    python benchmarks/training.py --threads 1 --out results/training.json
    python benchmarks/training.py --quick
    python benchmarks/training.py --case 22,64,50      # one case: beads, walkers, steps per window
    python benchmarks/training.py --case 50,16,50 --estimator-chunk 2   # the same gradient in less memory

Prints one JSON document (and writes it to ``--out``).
"""
import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import openmm
import torch
from tqdm.auto import tqdm

from openmm_dynmatch.config import Config, DynamicsConfig, TrainConfig
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.models.registry import build_classifier_for
from openmm_dynmatch.models.potential import build_potential
from openmm_dynmatch.openmm.recorder import record_paths
from openmm_dynmatch.openmm.sampler import OpenMMSampler
from openmm_dynmatch.openmm.cg_walkers import create_system
from openmm_dynmatch.sampling import windows_from_paths
from openmm_dynmatch.train import DynamicMatchingTrainer
from openmm_dynmatch.updates import walkers_per_pass

TEMPERATURE_K = 300.0
MASS_AMU = 14.0
TIMESTEP_PS = 0.002
FRICTION_PER_PS = 10.0
WINDOW_FRAMES = 6  # T + 1
BOND_NM = 0.38
EQUILIBRATION_STEPS = 100
EQUIVARIANT_MAX_BEADS = 22
FIRST_STEPS = 3

QUICK_CASES = [(10, 16, 20), (22, 16, 20)]
DEFAULT_CASES = [  # (beads, walkers, steps per window)
    (10, 16, 50), (10, 64, 50), (10, 256, 50),     # walkers
    (10, 64, 20), (10, 64, 150),                    # window length
    (10, 4, 10), (22, 4, 10), (50, 4, 10), (100, 4, 10), (200, 4, 10),  # beads
]


def chain_bonds(n_beads: int) -> list:
    """Bonds ``[i, i+1]`` of a linear chain."""
    return [[i, i + 1] for i in range(n_beads - 1)]


def bead_types(n_beads: int) -> list:
    """Two alternating bead types."""
    return [i % 2 for i in range(n_beads)]


def chain_metadata(n_beads: int) -> dict:
    """Exported-model metadata of an ``n_beads`` chain (Langevin; masses and friction are reset by the sampler)."""
    return {"n_beads": n_beads, "bead_names": [f"B{i}" for i in range(n_beads)], "bead_types": bead_types(n_beads),
            "type_names": ["A", "B"], "masses_amu": [MASS_AMU] * n_beads, "temperature_k": TEMPERATURE_K,
            "integrator": "langevin", "friction_per_ps": FRICTION_PER_PS, "timestep_ps": TIMESTEP_PS,
            "cutoff_nm": None, "periodic": False, "bonds": chain_bonds(n_beads)}


def zigzag_chains(n_walkers: int, n_beads: int, seed: int) -> np.ndarray:
    """Start positions ``(n_walkers, n_beads, 3)`` nm: a planar zigzag with bonds of about 0.37 nm, jittered."""
    index = np.arange(n_beads)
    base = np.stack([0.34 * index, 0.15 * (index % 2), np.zeros(n_beads)], axis=1)
    noise = 0.01 * np.random.default_rng(seed).standard_normal((n_walkers, n_beads, 3))
    return base[None] + noise


def chain_potential(n_beads: int):
    """Default potential (prior + pair MLP) with a prior of harmonic chain bonds, built from its spec."""
    bonds = chain_bonds(n_beads)
    spec = {"n_beads": n_beads, "bonds": bonds, "bead_types": bead_types(n_beads),
            "prior": {"bonds": bonds, "bond_r0_nm": BOND_NM, "bond_k": 1000.0}}
    return build_potential(spec)


def make_classifier(kind: str, n_beads: int, aa_windows: torch.Tensor, members: int = 1):
    """The window classifier of ``kind`` with its input scales taken from the AA windows, or an ensemble of
    ``members`` of them."""
    return build_classifier_for(kind, bead_types(n_beads), WINDOW_FRAMES, scale_windows=aa_windows[:512],
                                members=members)


def build_trainer(n_beads: int, n_walkers: int, n_steps: int, classifier_kind: str, run_dir: str, seed: int,
                  estimator_chunk: int = 0, members: int = 1):
    """A DynamicMatchingTrainer for one case (Reference platform, fresh models seeded with ``seed``)."""
    steps_per_frame = n_steps // (WINDOW_FRAMES - 1)
    torch.manual_seed(seed)
    potential = chain_potential(n_beads)
    dynamics = DynamicsParameters("langevin", FRICTION_PER_PS, bead_types(n_beads))
    sampler = OpenMMSampler(chain_metadata(n_beads), n_walkers, platform="Reference")
    masses = np.full(n_beads, MASS_AMU)
    sampler.set_model(potential, dynamics)
    starts = sampler.advance(zigzag_chains(n_walkers, n_beads, seed), EQUILIBRATION_STEPS, seed).positions
    aa_paths = sampler.record(starts, n_steps, seed + 1).positions
    aa_windows = windows_from_paths(aa_paths, steps_per_frame)
    classifier = make_classifier(classifier_kind, n_beads, aa_windows, members)
    config = Config(
        train=TrainConfig(iterations=10**6, walkers=n_walkers, classifier_warmup=0, snr_every=0,
                          checkpoint_every=10**6, probe_windows=0, seed=seed, estimator_chunk=estimator_chunk),
        dynamics=DynamicsConfig(integrator="langevin", timestep_ps=TIMESTEP_PS, friction_per_ps=FRICTION_PER_PS))
    return DynamicMatchingTrainer(config, potential, classifier, dynamics, sampler, aa_windows.numpy(), masses,
                                  TEMPERATURE_K, steps_per_frame, run_dir)


def sampling_breakdown(trainer, n_walkers: int, n_beads: int, n_steps: int, repeats: int, seed: int) -> dict:
    """Median seconds of the parts of one sampling call, each timed on its own (``repeats`` times).

    ``export``: scripting-weights refresh and TorchScript export of the current potential (``set_model``);
    ``context``: a new System + Context of all walkers from that file; ``first_steps``: its first
    ``FIRST_STEPS`` steps (TorchScript optimises a freshly loaded module on its first calls, and the sampler
    loads one per call); ``integrate``: plain
    ``integrator.step(n)``; ``record``: :func:`record_paths` of the same window (positions read after every step),
    so ``record - integrate`` is the cost of recording.
    """
    sampler = trainer.sampler
    starts = zigzag_chains(n_walkers, n_beads, seed)
    times = {"export": [], "context": [], "first_steps": [], "integrate": [], "record": []}
    for r in range(repeats):
        t0 = time.perf_counter()
        sampler.set_model(trainer.potential, trainer.dynamics)
        t1 = time.perf_counter()
        engine = create_system(sampler.model_path, n_walkers, platform=sampler.platform, seed=seed + r + 1)
        t2 = time.perf_counter()
        engine.context.setPositions(starts.reshape(-1, 3))
        engine.context.setVelocitiesToTemperature(TEMPERATURE_K, seed + r + 1)
        engine.integrator.step(FIRST_STEPS)
        t3 = time.perf_counter()
        engine.integrator.step(n_steps)
        t4 = time.perf_counter()
        record_paths(engine, starts, n_steps, seed=seed + r)
        t5 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            times[key].append(value)
    medians = {f"{key}_s": statistics.median(values) for key, values in times.items()}
    medians["recording_overhead_s"] = medians["record_s"] - medians["integrate_s"]
    return medians


def rss_mib() -> float:
    """Resident-set high-water mark of this process, MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def run_case(n_beads: int, n_walkers: int, n_steps: int, classifier_arg: str, repeats: int, seed: int,
             estimator_chunk: int = 0, members: int = 1) -> dict:
    """Time ``repeats`` training iterations of one case after a warm-up; returns its JSON row."""
    if n_steps % (WINDOW_FRAMES - 1):
        raise ValueError(f"steps per window must be a multiple of {WINDOW_FRAMES - 1}, got {n_steps}")
    kind = classifier_arg
    if kind == "auto":
        kind = "equivariant" if n_beads <= EQUIVARIANT_MAX_BEADS else "invariant"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dynmatch-bench-") as run_dir:
        trainer = build_trainer(n_beads, n_walkers, n_steps, kind, run_dir, seed, estimator_chunk, members)
        setup_s = time.perf_counter() - start
        trainer.step()
        rows = [trainer.step() for _ in range(repeats)]
        tracemalloc.start()
        trainer.step()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        breakdown = sampling_breakdown(trainer, n_walkers, n_beads, n_steps, min(repeats, 3), seed)
    medians = {key: statistics.median(row.get(key, 0.0) for row in rows)
               for key in ("time_sampling_s", "time_classifier_s", "time_estimator_s", "time_friction_runs_s")}
    iteration_s = sum(medians.values())
    return {
        "n_beads": n_beads, "n_walkers": n_walkers, "steps_per_window": n_steps,
        "steps_per_frame": n_steps // (WINDOW_FRAMES - 1), "window_frames": WINDOW_FRAMES, "classifier": kind,
        "classifier_members": members, "estimator_chunk": estimator_chunk,
        "estimator_chunk_walkers": walkers_per_pass(estimator_chunk, n_steps + 1, n_beads) or n_walkers,
        "classifier_parameters": sum(p.numel() for p in trainer.classifier.parameters()),
        "potential_parameters": sum(p.numel() for p in trainer.potential.parameters()),
        **{f"{key}_median": value for key, value in medians.items()},
        "iteration_s_median": iteration_s,
        "estimator_to_sampling": medians["time_estimator_s"] / medians["time_sampling_s"],
        "walker_steps_per_s_sampling": n_walkers * n_steps / medians["time_sampling_s"],
        "sampling_breakdown_s": breakdown,
        "fractions": {key.split("_")[1]: value / iteration_s for key, value in medians.items()},
        "repeats": repeats, "setup_s": setup_s, "case_wall_s": time.perf_counter() - start,
        "updates": [row.get("updates", 0) for row in rows],
        "rss_peak_mib": rss_mib(), "tracemalloc_peak_mib": traced_peak / 2**20,
        "paths_mib": n_walkers * (n_steps + 1) * n_beads * 3 * 8 / 2**20,
    }


SNR_OPTIONS = (  # (label, baseline, walkers per start, friction gradient)
    ("mean baseline", "mean", 1, "score"), ("leave-one-out", "loo", 1, "score"),
    ("per-start LOO, 4 per start", "loo", 4, "score"), ("per-start LOO, 16 per start", "loo", 16, "score"),
    ("common random numbers (friction; 2 extra runs)", "mean", 1, "crn"))


def snr_study(n_beads: int, n_walkers: int, n_steps: int, batches: int, seed: int) -> dict:
    """Gradient signal-to-noise ratio of each estimator option at equal cost (same walkers and steps).

    The "AA" windows come from the chain at ``FRICTION_PER_PS``; the CG model runs at 3x that friction, so the
    classifier has something to find. After ``40`` classifier-only iterations the model is frozen (learning rates
    0) and every option draws ``batches`` independent batches; the SNR of the friction gradient is
    ``|mean| / std`` over batches (a single batch's SNR), and that of the whole gradient vector
    ``|mean| / sqrt(sum of variances)``.
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="dynmatch-snr-") as run_dir:
        trainer = build_trainer(n_beads, n_walkers, n_steps, "invariant", run_dir, seed)
        with torch.no_grad():
            trainer.dynamics.log_friction += np.log(3.0)
        cfg = trainer.train_cfg
        cfg.classifier_warmup, cfg.grad_clip = 40, 1e30
        for _ in range(40):
            trainer.step()
        for group in trainer.generator_optimizer.param_groups:
            group["lr"] = 0.0
        params = [p for group in trainer.generator_optimizer.param_groups for p in group["params"]]
        for label, baseline, per_start, friction_gradient in SNR_OPTIONS:
            cfg.baseline, cfg.walkers_per_start, cfg.friction_gradient = baseline, per_start, friction_gradient
            grads, start = [], time.perf_counter()
            for b in range(batches):
                paths, _ = trainer.sample(10_000 + b, "conditional")
                trainer.generator_update(paths, "conditional", compute_snr=False)
                grads.append(torch.cat([p.grad.reshape(-1).double() for p in params if p.grad is not None]))
            grads = torch.stack(grads)
            friction = grads[:, -1]   # log friction is the last parameter group
            rows.append({"option": label, "baseline": baseline, "walkers_per_start": per_start,
                         "friction_gradient": friction_gradient,
                         "snr_friction": float(friction.mean().abs() / friction.std()),
                         "snr_all": float(grads.mean(0).norm() / grads.var(0).sum().sqrt()),
                         "seconds_per_batch": (time.perf_counter() - start) / batches})
    return {"n_beads": n_beads, "walkers": n_walkers, "steps_per_window": n_steps, "batches": batches,
            "friction_ratio_cg_to_data": 3.0, "options": rows}


def parse_case(text: str) -> tuple:
    """``'beads,walkers,steps'`` -> a tuple of three positive ints."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1 or values[0] < 2 or values[2] % (WINDOW_FRAMES - 1):
        raise argparse.ArgumentTypeError(f"expected 'beads,walkers,steps' (positive ints, beads >= 2, steps a "
                                         f"multiple of {WINDOW_FRAMES - 1}), got '{text}'")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two tiny cases (smoke test, < 2 minutes)")
    parser.add_argument("--case", type=parse_case, action="append", default=None,
                        help="run only this case 'beads,walkers,steps' (repeatable)")
    parser.add_argument("--classifier", choices=["auto", "equivariant", "invariant"], default="auto",
                        help=f"window classifier (auto: equivariant up to {EQUIVARIANT_MAX_BEADS} beads)")
    parser.add_argument("--members", type=int, default=1, help="classifiers in the ensemble (classifier.members)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per case (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--estimator-chunk", type=int, default=TrainConfig().estimator_chunk,
                        help="walkers per backward pass of the path likelihood (train.estimator_chunk; 0: all; -1: automatic; "
                             "default: the config's)")
    parser.add_argument("--snr", action="store_true",
                        help="also measure the gradient SNR of every estimator option at equal cost")
    parser.add_argument("--snr-batches", type=int, default=12, help="independent batches per option of --snr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.estimator_chunk < -1:
        parser.error(f"--estimator-chunk must be >= -1, got {args.estimator_chunk}")
    if args.members < 1:
        parser.error(f"--members must be >= 1, got {args.members}")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    torch.set_num_threads(args.threads)
    cases = args.case or (QUICK_CASES if args.quick else DEFAULT_CASES)
    repeats = args.repeats or (2 if args.quick else 5)
    start = time.perf_counter()
    rows = [run_case(*case, args.classifier, repeats, args.seed, args.estimator_chunk, args.members)
            for case in tqdm(cases, desc="cases")]
    result = {
        "benchmark": "training", "quick": args.quick, "threads": args.threads, "classifier_option": args.classifier,
        "integrator": "langevin", "timestep_ps": TIMESTEP_PS, "platform": "Reference",
        "memory_note": "rss_peak_mib: ru_maxrss of the whole process so far (monotone over cases); "
                       "tracemalloc_peak_mib: Python objects and numpy buffers during one extra step "
                       "(torch tensor storage is not traced)",
        "cases": rows,
        "snr": snr_study(10, 64 if args.quick else 128, 50, args.snr_batches, args.seed) if args.snr else None,
        "total_wall_s": time.perf_counter() - start,
        "torch": torch.__version__, "openmm": openmm.__version__, "host": platform.platform(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

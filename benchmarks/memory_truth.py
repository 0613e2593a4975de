"""Known truth with memory: what science.py's dynamic matching learns when the data's friction has memory.

The AA data ask a Markovian CG model for another friction at every lag (``markov_lags.py``: 7.4/ps at 0.1 ps,
1.5/ps at 1.5 ps on the bead MSD), and dynamic matching's friction (3.5-4/ps) gives psi-core times 1.2x the AA
data's at seeds 1 and 2, where the friction calibrated on the MSD (1.4-1.7/ps) comes within 7%. This script puts
that explanation on known truth: data made by a model whose friction has memory, with everything else exact.

The data are the L2 teacher's potential (``recovery.py --case teacher``: a CG model of alanine dipeptide
force-matched to 1 ns of AA data) run by OpenMM with a hidden particle tied to every bead (:class:`HiddenBath`):
mass ``mass_ratio`` times its bead's, a harmonic spring between the two, the bead's own Langevin friction
``bead_friction_per_ps`` and the hidden particle's ``hidden_friction_per_ps``. The hidden particles are left out
of the data. A spring integrates out of the Boltzmann distribution, so the beads' equilibrium is the teacher's
and the teacher's forces are the exact mean forces (force matching finds the same potential); their motion is a
generalised Langevin equation with a friction kernel whose integral, the friction of slow motion, is
``bead_friction + mass_ratio * hidden_friction`` (:meth:`HiddenBath.zero_frequency_friction`) while short lags
see the stiff spring. The defaults were chosen on one free bead to give a lag profile like the AA data's (it asks
for 6.9/ps at 0.1 ps and 1.9/ps at 1.5 ps; 1.5/ps at long times); the molecule's bead MSD asks for 6.8 -> 1.8/ps
(benchmarks/README.md, "Known truth with memory").

Reported:

- ``lags``: the friction at which the teacher's potential, run Markovian at ``--frictions``, matches the data at
  lags of 0.1-1.5 ps (``coordinate_friction.analyse``, as ``markov_lags.py``);
- ``scan``: the MSM slowest timescale and psi-core relaxation time of each of those productions over the data's,
  and the frictions at which each ratio is within the L2 case's 15% of 1: the frictions at which a Markovian model
  with the exact potential gets that time right;
- ``models``: ``science.py``'s force matching (10/ps), FM with the calibrated friction and dynamic matching (its
  default settings, from 10/ps; more runs with ``--dm-frame-steps`` and ``--dm-starts``) trained on the data, each
  produced at its friction and judged on the same two times, with the learned friction and the held-out AUC.

Every production is made ``--replicas`` times (ratios: their mean and standard error) and judged against an
independent run of the hidden-particle model of ``--reference-ps`` per walker.

    OMP_NUM_THREADS=1 python benchmarks/memory_truth.py --work-dir memory_work --dm-frame-steps 2 --dm-starts 1 \\
        --out benchmarks/results/memory_truth.json --plot benchmarks/results/memory_truth.png
"""
import argparse
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from coordinate_friction import LAGS, analyse, format_matches, highlights, matching_curve  # benchmarks/ on path
from friction_gradient import friction_log_axis
from markov_lags import productions
from openmm_dynmatch import trajio
from openmm_dynmatch.fileio import write_json
from recovery import TEACHER_QUICK, TeacherSettings, exact_force_data, run_production, teacher_stages
from stages import StageClock

#: science.py's models trained on the memory data, in the order of the table.
MODELS = ("fm", "fmc", "dm")
#: The independent longer run of the hidden-particle model that judges the kinetics, and its seed offset.
REFERENCE_NAME = "memory_reference.h5"
REFERENCE_SEED = 1000
#: The L2 case's tolerance on the kinetic ratios (``TeacherSettings.tolerance_kinetics``), for the scan's summary.
KINETIC_TOLERANCE = TeacherSettings.tolerance_kinetics
#: Time step of the hidden-particle runs (ps), that of the teacher's data.
TIMESTEP_PS = 0.002


@dataclass(frozen=True)
class HiddenBath:
    """One hidden particle per bead: its mass over the bead's, the spring between them (kJ/mol/nm^2) and the
    Langevin frictions of the bead and of the hidden particle (1/ps)."""

    mass_ratio: float = 0.3
    spring_kj_per_mol_nm2: float = 5000.0
    bead_friction_per_ps: float = 0.3
    hidden_friction_per_ps: float = 4.0

    def zero_frequency_friction(self) -> float:
        """The integral of the bead's friction kernel (1/ps): ``m_h gamma_h / m_b`` from the hidden particle
        (the spring passes its drag on whole at slow motion) plus the bead's own friction."""
        return self.bead_friction_per_ps + self.mass_ratio * self.hidden_friction_per_ps

    def memory_time_ps(self, bead_mass_amu: float) -> float:
        """The decay time of the bath's part of the kernel where the hidden particle is overdamped (ps):
        ``m_h gamma_h / k`` for a bead of ``bead_mass_amu`` (a nominal time where it is not)."""
        return self.mass_ratio * bead_mass_amu * self.hidden_friction_per_ps / self.spring_kj_per_mol_nm2

    @classmethod
    def from_memory(cls, bead_friction_per_ps: float, zero_frequency_friction_per_ps: float, memory_time_ps: float,
                    bead_mass_amu: float, mass_ratio: float = 0.3) -> "HiddenBath":
        """The bath of a kernel given by its parts: the bead's own friction (felt at every frequency), the
        zero-frequency friction (its integral) and the memory time (:meth:`memory_time_ps`) for a bead of
        ``bead_mass_amu``; the hidden particle's mass ``mass_ratio`` times the bead's."""
        extra = zero_frequency_friction_per_ps - bead_friction_per_ps
        if not (math.isfinite(extra) and extra > 0):
            raise ValueError(f"zero_frequency_friction_per_ps must exceed bead_friction_per_ps, got "
                             f"{zero_frequency_friction_per_ps!r} and {bead_friction_per_ps!r}")
        if not (math.isfinite(memory_time_ps) and memory_time_ps > 0):
            raise ValueError(f"memory_time_ps must be a finite positive number, got {memory_time_ps!r}")
        hidden = extra / mass_ratio
        bath = cls(mass_ratio=mass_ratio, spring_kj_per_mol_nm2=mass_ratio * bead_mass_amu * hidden / memory_time_ps,
                   bead_friction_per_ps=bead_friction_per_ps, hidden_friction_per_ps=hidden)
        bath.check()
        return bath

    def check(self) -> None:
        """Refuse a constant that is not finite and positive, naming it."""
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"HiddenBath.{name} must be a finite positive number, got {value!r}")


def memory_system(model: Path, masses_amu, n_walkers: int, bath: HiddenBath, temperature_k: float, seed: int):
    """The OpenMM System and integrator of ``n_walkers`` walkers of an exported model with one hidden particle
    per bead: beads ``0 .. n - 1`` (walker-major), their hidden particles ``n .. 2n - 1`` in the same order."""
    import openmm

    from openmm_dynmatch.openmm.integrators import per_bead_langevin_integrator
    from openmm_dynmatch.openmm.openmmml_plugin import DynmatchPotentialImpl
    from openmm_dynmatch.openmm.reference import openmm_seed

    bath.check()
    masses = np.tile(np.asarray(masses_amu, dtype=np.float64), n_walkers)
    n = masses.size
    system = openmm.System()
    for mass in np.concatenate([masses, bath.mass_ratio * masses]):
        system.addParticle(float(mass))
    DynmatchPotentialImpl(str(model)).addForces(None, system, list(range(n)), 0)
    spring = openmm.CustomBondForce("0.5*k*r^2")
    spring.addGlobalParameter("k", bath.spring_kj_per_mol_nm2)
    for i in range(n):
        spring.addBond(i, n + i, [])
    system.addForce(spring)
    frictions = np.concatenate([np.full(n, bath.bead_friction_per_ps), np.full(n, bath.hidden_friction_per_ps)])
    integrator = per_bead_langevin_integrator(temperature_k, frictions, TIMESTEP_PS, openmm_seed(seed))
    return system, integrator


def memory_trajectories(model: Path, frames: np.ndarray, metadata: dict, n_walkers: int, ps: float,
                        frame_interval_ps: float, bath: HiddenBath, seed: int) -> np.ndarray:
    """Bead positions (n_walkers, n_frames + 1, n_beads, 3), nm, of the model with its hidden particles, from
    frames spread evenly over ``frames``; every hidden particle starts at its bead plus a draw from its
    equilibrium offset (Gaussian, variance kT/k per axis), velocities at the temperature."""
    import openmm
    from tqdm import tqdm

    from openmm_dynmatch.openmm.runner import start_frame_indices
    from openmm_dynmatch.units import kt_kj_per_mol

    temperature = float(metadata["temperature_k"])
    system, integrator = memory_system(model, metadata["masses_amu"], n_walkers, bath, temperature, seed)
    starts = frames[start_frame_indices(len(frames), n_walkers, "spaced")]
    beads = starts.reshape(-1, 3)
    rng = np.random.default_rng(seed)
    hidden = beads + rng.normal(0.0, math.sqrt(kt_kj_per_mol(temperature) / bath.spring_kj_per_mol_nm2), beads.shape)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.concatenate([beads, hidden]))
    context.setVelocitiesToTemperature(temperature, int(seed) + 1)
    every = int(round(frame_interval_ps / TIMESTEP_PS))
    n_frames = int(round(ps / frame_interval_ps))
    n = beads.shape[0]
    out = np.empty((n_frames + 1, n, 3))
    out[0] = beads
    for k in tqdm(range(1, n_frames + 1), desc="memory data", disable=not sys.stderr.isatty()):
        integrator.step(every)
        out[k] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)[:n]
    if not np.all(np.isfinite(out)):
        raise FloatingPointError("the hidden-particle run produced non-finite positions; lower the spring or the "
                                 "time step")
    return out.reshape(n_frames + 1, n_walkers, -1, 3).transpose(1, 0, 2, 3)


def memory_data(teacher: dict, mapped: Path, settings: TeacherSettings, bath: HiddenBath, work: Path, seed: int,
                name: str = "memory_data.h5", ps: float = None) -> Path:
    """The teacher's trajectories with hidden particles, with its exact forces, as a CG data file ``work/name``
    (made where missing; as ``recovery.teacher_data``: ``data_walkers`` x ``ps`` (default ``data_ps``), the first
    tenth of each dropped)."""
    from openmm_dynmatch.openmm.runner import load_walkers

    out = work / name
    if out.exists():
        return out
    aa = trajio.load(mapped)
    frames = np.concatenate(load_walkers(work / "teacher_run.h5"))
    walkers = memory_trajectories(Path(teacher["model"]), frames, aa.metadata, settings.data_walkers,
                                  ps or settings.data_ps, settings.frame_interval_ps, bath, seed + 7)
    return exact_force_data(list(walkers), Path(teacher["potential"]), aa, settings.frame_interval_ps, out)


def kinetic_ratios(data, production: Path, seed: int) -> dict:
    """MSM slowest timescale and psi-core relaxation time of a production over the data's (``analysis.compare``)."""
    from openmm_dynmatch.analysis import compare

    summary = compare(data, trajio.load(production), seed=seed)["summary"]
    return {"msm": (summary.get("timescale_ratio") or [None])[0], "core": summary.get("core_relaxation_ratio"),
            "timescales_data_ps": summary.get("timescales_aa_ps"), "timescales_cg_ps": summary.get("timescales_cg_ps")}


def replica_files(work: Path, key: str, count: int) -> list:
    """The files of a model's ``count`` productions: ``cg_<key>.h5``, then ``cg_<key>_rep<k>.h5`` (a name the lag
    analysis, which reads ``cg_<key>.h5`` and its ``_seed``/``_group`` files, leaves out)."""
    return [work / f"cg_{key}.h5"] + [work / f"cg_{key}_rep{k}.h5" for k in range(1, count)]


def replicated(model: Path, key: str, frames: np.ndarray, work: Path, settings: TeacherSettings, seed: int,
               count: int, clock: StageClock, friction=None) -> list:
    """``count`` productions of ``model`` (at ``friction`` when given, else its own) from the same start frames at
    seeds ``seed, seed + 1, ..``, made where missing; returns their files."""
    files = replica_files(work, key, count)
    for k, out in enumerate(files):
        stage = f"production_{key}_s" if k == 0 else f"production_{key}_rep{k}_s"
        clock.run(stage, out.exists(), run_production, model, frames, settings.production_walkers,
                  settings.production_ps, settings, out, seed + k, friction)
    return files


def judged(data, files, seed: int) -> dict:
    """:func:`kinetic_ratios` of each production and the mean of each ratio with its standard error over them."""
    return summarised([kinetic_ratios(data, f, seed) for f in files])


def summarised(rows: list) -> dict:
    """Productions' kinetic ratios (:func:`kinetic_ratios` rows) with the mean of each ratio and its standard error
    over them (a production without the ratio left out)."""
    out = {"productions": rows}
    for key in ("msm", "core"):
        out[key], out[f"{key}_se"] = mean_se(r[key] for r in rows)
    return out


def mean_se(values) -> tuple:
    """Mean and standard error of the values that are not None: ``(None, None)`` without any, SE None with one."""
    values = np.array([v for v in values if v is not None], dtype=float)
    if not values.size:
        return None, None
    return float(values.mean()), (float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else None)


def kinetic_range(frictions, ratios, tolerance: float) -> list:
    """The frictions of a scan whose ratio of times (CG/data) lies within ``tolerance`` of 1 (a scan that need not
    be monotonic: the time can have a minimum in friction, as in Kramers' turnover); ratios of None are left out."""
    return [float(f) for f, r in zip(frictions, ratios) if r is not None and abs(r - 1.0) <= tolerance]


def plot(result: dict, out: Path) -> None:
    """Left: the matching friction against lag (bead MSD without the centre of mass, internal motion, psi);
    right: the scan's two time ratios against friction, the trained models as points; the zero-frequency friction
    dotted in both."""
    from openmm_dynmatch.report import pyplot, save_figure
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"wspace": 0.3})
    rows = {row["name"]: row for rows in result["lags"]["report"]["observables"].values() for row in rows}
    for name in ("bead_msd_com_free", "bead_msd_internal", "psi"):
        if name in rows:
            lags, ys, errs = matching_curve(rows[name])
            left.errorbar(lags, ys, yerr=errs, marker="o", capsize=2, label=name)
    slow = result["zero_frequency_friction_per_ps"]
    left.axhline(slow, color="0.4", ls=":", label=f"zero-frequency friction {slow:g}/ps")
    left.set(xlabel="lag (ps)", ylabel="Markovian friction matching the data (1/ps)")
    friction_log_axis(left.yaxis)
    left.legend(fontsize=7)
    scan = result["scan"]
    for key, marker, name in (("msm", "o", "MSM slowest timescale"), ("core", "s", "psi-core relaxation")):
        right.errorbar(scan["frictions_per_ps"], [r[key] for r in scan["ratios"]],
                       yerr=[r.get(f"{key}_se") or 0.0 for r in scan["ratios"]], marker=marker, capsize=2,
                       label=f"{name}, the teacher's potential")
        for k, (label, model) in enumerate(result["models"].items()):
            kinetics = model["kinetics"]
            if kinetics[key] is not None:
                right.errorbar(model["friction_per_ps"], kinetics[key], yerr=kinetics.get(f"{key}_se") or 0.0,
                               marker=marker, ls="none", color=f"C{k + 2}", ms=8, mfc="none", capsize=2,
                               label=f"{label} ({model['friction_per_ps']:.2f}/ps)" if key == "msm" else None)
    right.axhline(1.0, color="0.5", lw=0.8)
    right.axvline(slow, color="0.4", ls=":")
    right.set(xlabel="friction (1/ps)", ylabel="time CG / data")
    friction_log_axis(right.xaxis)
    right.legend(fontsize=7)
    save_figure(fig, out)


def model_runs(work: Path, settings, dm_frame_steps=(), dm_starts=(), overrides=None, tag: str = "") -> list:
    """``(key, science.train_one label, folder, settings)`` of every trained model: force matching and the
    calibrated friction in ``work``; dynamic matching from the demo's start, from each of ``dm_starts`` and at each
    other of ``dm_frame_steps`` (in ``<folder>/fs<n>``), with ``overrides`` of its settings, in ``work/<tag>`` with
    keys ending ``_<tag>`` when a tag is given (a run with other settings never reuses the default's files)."""
    dm_settings = replace(settings, **(overrides or {}))
    folder = work / tag if tag else work
    suffix = f"_{tag}" if tag else ""
    runs = [(label, label, work, settings) for label in MODELS if label != "dm"]
    runs.append(("dm" + suffix, "dm", folder, dm_settings))
    runs += [(f"dm_fs{fs}{suffix}", "dm", folder / f"fs{fs}", replace(dm_settings, frame_step=fs))
             for fs in dm_frame_steps or () if fs != dm_settings.frame_step]
    runs += [(f"dm_from_{start:g}{suffix}", f"dm_from_{start:g}", folder, dm_settings) for start in dm_starts or ()]
    return runs


def run(work: Path, frictions, bath: HiddenBath, seed: int = 0, settings: TeacherSettings = None,
        science_settings=None, dm_frame_steps=None, dm_starts=None, reference_ps: float = None, replicas: int = 1,
        overrides=None, tag: str = "", progress: bool = False) -> dict:
    """The stages, the scan, the three trained models (and dynamic matching at the other ``dm_frame_steps``, in
    ``work/fs<n>``, and from the other ``dm_starts``) and their judgement, against an independent run of
    ``reference_ps`` per walker when given (else the training data), ``replicas`` productions each; dynamic
    matching with ``overrides`` of its settings under ``tag`` (:func:`model_runs`); returns the JSON document."""
    from openmm_dynmatch.openmm.runner import load_walkers
    from science import DEFAULT, train_one

    settings = settings or TeacherSettings()
    science_settings = science_settings or DEFAULT
    work.mkdir(parents=True, exist_ok=True)
    clock = StageClock(work)
    mapped, teacher, _, _ = teacher_stages(settings, work, seed, clock, student=False)
    data_path = clock.run("memory_data_s", (work / "memory_data.h5").exists(), memory_data, teacher, mapped,
                          settings, bath, work, seed)
    if reference_ps:
        judge_path = clock.run("memory_reference_s", (work / REFERENCE_NAME).exists(), memory_data, teacher, mapped,
                               settings, bath, work, seed + REFERENCE_SEED, REFERENCE_NAME, reference_ps)
    else:
        judge_path = data_path
    judge = trajio.load(judge_path)
    frames = np.concatenate(load_walkers(work / "teacher_run.h5"))
    scan_models = productions(work, "teacher", teacher, frictions, frames, settings, seed + 2, clock)
    report = analyse(work, scan_models, LAGS, data_path=data_path)
    scan = [judged(judge, replicated(Path(teacher["model"]), name, frames, work, settings, seed + 2, replicas, clock,
                                     float(f)), seed) for name, f in zip(scan_models, frictions)]
    frictions = [float(f) for f in frictions]
    models = {}
    runs = model_runs(work, science_settings, dm_frame_steps, dm_starts, overrides, tag)
    for key, label, folder, run_settings in runs:
        folder.mkdir(parents=True, exist_ok=True)
        run_clock = clock if folder == work else StageClock(folder)
        summary = train_one(label, data_path, folder, run_settings, seed, run_clock, progress)
        files = replicated(Path(summary["model"]), key, frames, work, settings, seed + 2, replicas, clock)
        auc = summary.get("heldout_auc") or {}
        models[key] = {"friction_per_ps": summary["friction_per_ps"], "kinetics": judged(judge, files, seed),
                       "frame_spacing_ps": (run_settings.frame_step * settings.frame_interval_ps
                                            if label.startswith("dm") else None),
                       "heldout_auc_before": (auc.get("before") or {}).get("auc"),
                       "heldout_auc_after": (auc.get("after") or {}).get("auc")}
    return {"benchmark": "memory_truth", "seed": seed, "bath": asdict(bath), "overrides": dict(overrides or {}),
            "tag": tag,
            "zero_frequency_friction_per_ps": bath.zero_frequency_friction(),
            "teacher": vars(settings), "science_settings": {k: v for k, v in vars(science_settings).items()
                                                            if k != "config_overrides"},
            "lags": {"highlights": highlights(report), "report": report},
            "scan": {"frictions_per_ps": frictions, "ratios": scan,
                     "within_tolerance_per_ps": {key: kinetic_range(frictions, [r[key] for r in scan],
                                                                    KINETIC_TOLERANCE) for key in ("msm", "core")},
                     "tolerance": KINETIC_TOLERANCE},
            "models": models, "judged_against": judge_path.name,
            "production": {"walkers": settings.production_walkers, "ps": settings.production_ps, "replicas": replicas},
            "training_data_judged": kinetic_ratios(judge, data_path, seed) if reference_ps else None,
            "timings_s": clock.this_run()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("memory_truth_run"),
                        help="stage files (reused when present; the L2 stages of markov_lags.py's work directory "
                             "serve)")
    parser.add_argument("--frictions", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0, 8.0],
                        help="Markovian frictions (1/ps) of the teacher's potential for the lag and kinetics scans")
    defaults = HiddenBath()
    for name, value in asdict(defaults).items():
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=value, help=f"HiddenBath.{name}")
    parser.add_argument("--dm-frame-steps", type=int, nargs="+", default=[],
                        help="more dynamic-matching runs, with the windows' frames this many saved frames (0.1 ps) "
                             "apart (science.py's own spacing is always run)")
    parser.add_argument("--dm-starts", type=float, nargs="+", default=[],
                        help="more dynamic-matching runs (science.py's frame spacing) from these start frictions "
                             "(1/ps)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a field of science.py's settings (DemoSettings) for the dynamic-matching runs, "
                             "e.g. --set friction_optimizer=adam; needs --tag")
    parser.add_argument("--tag", default="", help="folder and key suffix of the dynamic-matching runs made with --set")
    parser.add_argument("--reference-ps", type=float, default=400.0,
                        help="length (ps) of each walker of the independent hidden-particle run that judges the "
                             "kinetics (0: judge against the training data)")
    parser.add_argument("--replicas", type=int, default=4,
                        help="productions of every model and scan friction (seeds apart; ratios are their mean)")
    parser.add_argument("--quick", action="store_true", help="the L2 case's small sizes and science.py's quick ones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--progress", action="store_true", help="progress bars of the trainings")
    parser.add_argument("--out", type=Path, default=Path("memory_truth.json"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error(f"--replicas must be >= 1, got {args.replicas}")
    if args.dm_starts and min(args.dm_starts) <= 0:
        parser.error(f"--dm-starts must be positive frictions (1/ps), got {args.dm_starts}")
    if args.dm_frame_steps and min(args.dm_frame_steps) < 1:
        parser.error(f"--dm-frame-steps must be >= 1, got {args.dm_frame_steps}")
    if len(args.frictions) < 2 or min(args.frictions) <= 0:
        parser.error(f"--frictions: need at least two positive frictions (1/ps), got {args.frictions}")
    bath = HiddenBath(**{name: getattr(args, name) for name in asdict(defaults)})
    try:
        bath.check()
    except ValueError as err:
        parser.error(str(err))
    from science import DEFAULT, setting_overrides

    overrides = setting_overrides(args.set, DEFAULT, parser)
    if overrides and not args.tag:
        parser.error("--set changes the dynamic-matching runs: give --tag so that they do not reuse the default's")
    torch.set_num_threads(args.threads)
    science_settings = None
    if args.quick:
        from openmm_dynmatch.demo import QUICK
        science_settings = replace(QUICK, internal_motion=True)
    result = run(args.work_dir, args.frictions, bath, args.seed, TEACHER_QUICK if args.quick else None,
                 science_settings, args.dm_frame_steps, args.dm_starts, args.reference_ps, args.replicas,
                 overrides, args.tag, args.progress)
    write_json(args.out, result)
    lags = result["lags"]["report"]["lags_ps"]
    print("lag (ps)".ljust(24) + " ".join(f"{lag:6.2f}" for lag in lags), file=sys.stderr)
    for name, values in result["lags"]["highlights"].items():
        if name in ("bead_msd_com_free", "bead_msd_internal", "psi", "phi"):
            print(f"{name:24s}" + format_matches(values), file=sys.stderr)
    within = result["scan"]["within_tolerance_per_ps"]
    print(f"Markovian frictions (1/ps) giving the data's MSM / psi-core time within {KINETIC_TOLERANCE:.0%}: "
          f"{within['msm']} / {within['core']} (zero-frequency friction {result['zero_frequency_friction_per_ps']:g}"
          f"/ps)", file=sys.stderr)
    for label, model in result["models"].items():
        k = model["kinetics"]
        print(f"{label}: friction {model['friction_per_ps']:.3f}/ps, MSM / psi-core CG/data {k['msm']:.3f} +- "
              f"{k['msm_se'] or 0:.3f} / {k['core']:.3f} +- {k['core_se'] or 0:.3f}, held-out AUC "
              f"{model['heldout_auc_before']} -> {model['heldout_auc_after']}", file=sys.stderr)
    if args.plot:
        plot(result, args.plot)
    return result


if __name__ == "__main__":
    main()

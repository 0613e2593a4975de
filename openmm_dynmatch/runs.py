"""Training runs from a configuration: data, models, objectives, checkpoints and the exported model.

A run directory holds ``config.yaml`` (the resolved configuration), ``stage<i>_<objective>.pt`` (the
potential after each force-matching / relative-entropy stage, if any) and ``stage<i>_<objective>.csv`` (that
stage's evaluations: training and validation force loss vs iteration), ``friction_calibration.json`` (with
``train.pretrain_friction``: every friction tried and the choice), ``dihedral_correction.json`` (with
``train.correction_dihedrals``: the coefficients of every correction step, written after each),
``checkpoint.pt`` (dynamic-matching trainer state, written atomically), ``log.csv``, and at the end ``potential.pt``
(:func:`openmm_dynmatch.models.save_potential`), ``model.pt`` (the TorchScript file OpenMM runs),
``summary.json`` and ``training_curves.png`` (:func:`openmm_dynmatch.curves.plot_training_curves`).
``resume=True`` continues from whatever the directory holds, with the same configuration (only the keys of
:func:`openmm_dynmatch.config.resumable_keys`, such as ``train.iterations``, may change).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from openmm_dynmatch import trajio
from openmm_dynmatch.baselines import mean_force_loss, stage_summary, train_force_matching, train_relative_entropy
from openmm_dynmatch.config import Config, config_differences, load_config, resumable_keys, to_dict, write_config
from openmm_dynmatch.curves import plot_training_curves, read_log
from openmm_dynmatch.correction import resolve_dihedrals
from openmm_dynmatch.data import WindowDataset, split_blocks
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.errors import FileFormatError, short_reason
from openmm_dynmatch.fileio import torch_load, write_json
from openmm_dynmatch.indistinguishability import heldout_auc
from openmm_dynmatch.models.prior import fit_prior
from openmm_dynmatch.models.potential import CGPotential, build_net, load_potential, save_potential
from openmm_dynmatch.models.registry import build_classifier_for
from openmm_dynmatch.sampling import build_sampler
from openmm_dynmatch.train import CHECKPOINT_KEYS, DynamicMatchingTrainer
from openmm_dynmatch.units import kt_kj_per_mol


@dataclass
class TrainingData:
    """Mapped AA data prepared for a run (training blocks only; validation blocks are held out).

    Attributes
    ----------
    frames : np.ndarray, shape (n_train_frames, N, 3), nm
    forces : np.ndarray or None, shape (n_train_frames, N, 3), kJ/mol/nm
    windows : WindowDataset
        Training windows ``(T+1, N, 3)``.
    validation : WindowDataset or None
    metadata : dict
        The mapped file's metadata (bead names and types, masses, bonds, temperature_k, frame_interval_ps).
    steps_per_frame : int
        CG integration steps between window frames.
    validation_frames : np.ndarray or None, shape (n_validation_frames, N, 3), nm
        Every frame of the held-out blocks.
    validation_forces : np.ndarray or None, shape (n_validation_frames, N, 3), kJ/mol/nm
    frame_ranges : list of (start, stop) or None
        Half-open row ranges of ``frames`` that are contiguous in time (one per training block).
    """

    frames: np.ndarray
    forces: Optional[np.ndarray]
    windows: WindowDataset
    validation: Optional[WindowDataset]
    metadata: dict
    steps_per_frame: int
    validation_frames: Optional[np.ndarray] = None
    validation_forces: Optional[np.ndarray] = None
    frame_ranges: Optional[list] = None


def load_training_data(config: Config) -> TrainingData:
    """Read ``data.cg_path`` and cut training/validation windows as the configuration says."""
    if not config.data.cg_path:
        raise ValueError("data.cg_path is empty: give the mapped AA trajectory (written by `dynmatch map`) "
                         "or CG data imported with `dynmatch import`")
    traj = trajio.load(config.data.cg_path)
    meta = traj.metadata
    for key in ("bead_types", "bonds", "masses_amu", "temperature_k", "frame_interval_ps"):
        if meta.get(key) is None:  # absent, or None in files mapped before map required the run settings
            raise ValueError(f"{config.data.cg_path} lacks metadata '{key}' (found {meta.get(key)!r}): map it with "
                             f"`dynmatch map` (AA files that do not record the temperature or the frame interval "
                             f"need --temperature-k K and --frame-interval-ps PS), or import CG data with "
                             f"`dynmatch import`")
    window_interval_ps = meta["frame_interval_ps"] * config.data.frame_step
    steps = window_interval_ps / config.dynamics.timestep_ps
    if abs(steps - round(steps)) > 1e-6 or round(steps) < 1:
        raise ValueError(f"the window frame interval ({window_interval_ps} ps) must be a whole number of CG "
                         f"time steps (dynamics.timestep_ps = {config.dynamics.timestep_ps} ps)")
    data, segments = config.data, traj.segments  # windows and ranges never span two trajectories of the file
    split_seed = config.train.seed if data.split_seed < 0 else data.split_seed
    train_ranges, val_ranges = split_blocks(traj.n_frames, data.validation_fraction, data.n_blocks, split_seed,
                                            segments)
    windows = WindowDataset.from_ranges(traj.positions, train_ranges, data.window_frames, data.window_stride,
                                        data.frame_step, segments=segments)
    validation = WindowDataset.from_ranges(traj.positions, val_ranges, data.window_frames, data.window_stride,
                                           data.frame_step, segments=segments) if val_ranges else None
    train_index = np.concatenate([np.arange(a, b) for a, b in train_ranges])
    val_index = np.concatenate([np.arange(a, b) for a, b in val_ranges]) if val_ranges else None
    has_forces = traj.forces is not None and meta.get("forces_mapped", True)
    forces = traj.forces[train_index] if has_forces else None
    val_frames = traj.positions[val_index] if val_index is not None else None
    val_forces = traj.forces[val_index] if has_forces and val_index is not None else None
    ends = np.cumsum([0] + [b - a for a, b in train_ranges]).tolist()
    return TrainingData(traj.positions[train_index], forces, windows, validation, meta, int(round(steps)),
                        val_frames, val_forces, list(zip(ends[:-1], ends[1:])))


def build_potential_from_config(config: Config, data: TrainingData) -> CGPotential:
    """Prior fitted by Boltzmann inversion of the training frames (with empty dihedral corrections when
    ``train.correction_dihedrals`` asks for them), plus the configured network."""
    meta = data.metadata
    cfg = config.train
    corrections = resolve_dihedrals(cfg.correction_dihedrals, meta) if cfg.correction_dihedrals else None
    prior = fit_prior(data.frames, meta["bonds"], meta["temperature_k"], dihedrals=config.potential.prior_dihedrals,
                      correction_dihedrals=corrections, correction_order=cfg.correction_order,
                      trainable=config.potential.prior_trainable, dtype=config.potential.dtype)
    net_spec = dict(config.potential.net or {})
    net_spec.update(kind=config.potential.kind, n_beads=len(meta["bead_types"]), bonds=meta["bonds"],
                    bead_types=meta["bead_types"], n_types=len(meta.get("type_names", [])) or None)
    potential = CGPotential(prior, build_net(net_spec), dtype=config.potential.dtype)
    if hasattr(potential.net, "fit_scales"):  # feature standardisation from the training frames (internal_mlp)
        potential.net.fit_scales(data.frames)
    return potential


def dynamics_from_config(config: Config, data: TrainingData) -> DynamicsParameters:
    """The integrator and (learnable or fixed) friction of ``config.dynamics`` for the bead types of ``data``."""
    return DynamicsParameters(config.dynamics.integrator, config.dynamics.friction_per_ps,
                              data.metadata["bead_types"], learnable=config.dynamics.learn_friction)


def build_classifier_from_config(config: Config, data: TrainingData):
    """The window classifier of ``classifier.kind`` (:data:`openmm_dynmatch.models.registry.CLASSIFIERS`), its
    input scales set from the training windows; with ``classifier.members`` > 1 an ensemble of that many, drawn one
    after the other (:class:`~openmm_dynmatch.models.classifier_ensemble.ClassifierEnsemble`)."""
    cfg = config.classifier
    sample = data.windows[np.arange(min(len(data.windows), 512))]
    n_types = len(data.metadata.get("type_names", [])) or None
    return build_classifier_for(cfg.kind, data.metadata["bead_types"], config.data.window_frames, cfg.options,
                                cfg.chiral, cfg.dtype, n_types=n_types, scale_windows=sample,
                                internal_motion=cfg.internal_motion, members=cfg.members)


def model_metadata(data: TrainingData, config: Config, dynamics: DynamicsParameters) -> dict:
    """Exported-model metadata (DESIGN.md section 4) of the CG molecule and its dynamics."""
    meta = data.metadata
    friction = dynamics.friction_per_bead().detach().numpy()
    n_beads = len(meta["bead_types"])
    return {
        "n_beads": n_beads, "bead_names": list(meta.get("bead_names", [f"B{i}" for i in range(n_beads)])),
        "bead_types": [int(t) for t in meta["bead_types"]],
        "type_names": list(meta.get("type_names", [f"T{t}" for t in range(max(meta["bead_types"]) + 1)])),
        "masses_amu": [float(m) for m in meta["masses_amu"]], "temperature_k": float(meta["temperature_k"]),
        "integrator": config.dynamics.integrator, "friction_per_ps": float(friction.mean()),
        "bead_friction_per_ps": [float(f) for f in friction],
        "timestep_ps": float(config.dynamics.timestep_ps), "cutoff_nm": None, "periodic": False,
        "bonds": [[int(i), int(j)] for i, j in meta["bonds"]],
    }


def _sampler(config: Config, data: TrainingData, dynamics: DynamicsParameters, n_walkers: Optional[int] = None):
    """The sampler of ``train.sampler`` (:data:`openmm_dynmatch.sampling.SAMPLERS`) for this molecule."""
    return build_sampler(config.train.sampler, model_metadata(data, config, dynamics),
                         n_walkers or config.train.walkers, platform=config.train.platform)


def probe_auc(config: Config, data: TrainingData, potential, dynamics) -> Optional[dict]:
    """Held-out ROC-AUC of a fresh classifier (see :mod:`openmm_dynmatch.indistinguishability`), or None when
    ``train.probe_windows`` is 0 or there are no validation windows."""
    if config.train.probe_windows <= 0 or data.validation is None:
        return None
    n = min(config.train.probe_windows, len(data.windows), len(data.validation))
    rng = np.random.default_rng([config.train.seed, 303])
    train = data.windows[rng.choice(len(data.windows), n, replace=False)]
    heldout = data.validation[rng.choice(len(data.validation), n, replace=False)]
    return heldout_auc(_sampler(config, data, dynamics, n), potential, dynamics, train, heldout, data.steps_per_frame,
                       config.train.probe_steps, config.train.seed)


def _pretrain(config, data, potential, dynamics, objective: str, iterations: int, progress: bool, log_path=None):
    """One force-matching or relative-entropy stage, evaluated on the validation frames and logged to
    ``log_path``."""
    cfg = config.train
    evaluation = dict(validation_frames=data.validation_frames, validation_forces=data.validation_forces,
                      eval_every=cfg.pretrain_eval_every, eval_frames=cfg.pretrain_eval_frames, log_path=log_path)
    if objective == "force_matching":
        return train_force_matching(potential, data.frames, data.forces, iterations, cfg.lr_pretrain,
                                    cfg.batch_size, cfg.seed, progress, patience=cfg.pretrain_patience,
                                    lr_schedule=cfg.pretrain_lr_schedule, average=cfg.pretrain_average,
                                    **evaluation)
    sampler = _sampler(config, data, dynamics)
    steps = (config.data.window_frames - 1) * data.steps_per_frame
    return train_relative_entropy(potential, data.frames, sampler, dynamics,
                                  kt_kj_per_mol(data.metadata["temperature_k"]), iterations, cfg.lr_pretrain,
                                  cfg.batch_size, max(steps, 1), cfg.seed, progress, forces=data.forces,
                                  **evaluation)


def run_training(config: Config, run_dir, resume: bool = False, progress: bool = True,
                 start_potential=None) -> dict:
    """Train a CG model as ``config`` says and export it; returns a summary (paths and final parameters).

    ``start_potential`` (a potential file written by a run, e.g. its ``potential.pt``) replaces the potential
    ``config`` would build: training starts from it and the pre-training stages (and the dihedral correction) are
    skipped, so dynamic matching can start from a given model (the known-truth teacher of ``benchmarks/recovery.py``).

    Nothing is written before the data have been read and the models built, so a run that fails on its input
    (a wrong ``data.cg_path``, a file without the mapping metadata) leaves no folder that blocks the rerun.
    With ``resume=True`` the configuration must equal the run's ``config.yaml`` except in the keys of
    :func:`openmm_dynmatch.config.resumable_keys`.

    Raises
    ------
    ValueError
        If ``run_dir`` already holds a run and ``resume`` is False, or ``resume`` is True and the configuration
        differs from the run's in a key that may not change.
    """
    run_dir = Path(run_dir)
    check_run_dir(config, run_dir, resume)
    torch.manual_seed(config.train.seed)
    data = load_training_data(config)
    if start_potential is None:
        potential = build_potential_from_config(config, data)
    else:
        potential = _start_potential(start_potential, config)
    dynamics = dynamics_from_config(config, data)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(config, run_dir / "config.yaml")
    cfg = config.train
    stages = [(cfg.pretrain, cfg.pretrain_iterations)] if cfg.pretrain != "none" and start_potential is None else []
    if cfg.objective != "dynamic_matching":
        stages.append((cfg.objective, cfg.iterations))
    for index, (objective, iterations) in enumerate(stages):
        stage_file = stage_path(run_dir, index, objective)
        if resume and stage_file.exists():
            potential.load_state_dict(load_potential(stage_file)[0].state_dict())
            continue
        _pretrain(config, data, potential, dynamics, objective, iterations, progress, stage_file.with_suffix(".csv"))
        save_potential(stage_file, potential, model_metadata(data, config, dynamics))
    correction = _correct_dihedrals(config, data, potential, dynamics, run_dir, progress) \
        if cfg.correction_dihedrals and start_potential is None else None
    calibration = _calibrate_friction(config, data, potential, dynamics, run_dir) if cfg.pretrain_friction != "none" \
        else None
    probes = {}
    if cfg.objective == "dynamic_matching":
        probes["before"] = _cached_probe(run_dir / "probe_before.json", config, data, potential, dynamics)
        trainer = build_trainer(config, data, potential, dynamics, run_dir)
        checkpoint = run_dir / "checkpoint.pt"
        if resume and checkpoint.exists():
            _resume_trainer(trainer, checkpoint)
        trainer.run(progress=progress)
        trainer.load_averaged()
    probes["after"] = probe_auc(config, data, potential, dynamics)
    summary = finish_run(config, data, potential, dynamics, run_dir, probes, stages, calibration, correction)
    plot_training_curves(run_dir, run_dir / "training_curves.png")
    return summary


def _start_potential(path, config: Config) -> CGPotential:
    """The potential in ``path`` to start training from; its prior must be trainable exactly when
    ``potential.prior_trainable`` says, since what learns follows the potential's own parameters."""
    potential = load_potential(path)[0]
    prior = getattr(potential, "prior", None)
    trainable = isinstance(prior, torch.nn.Module) and any(p.requires_grad for p in prior.parameters())
    if trainable != config.potential.prior_trainable:
        raise ValueError(f"start_potential: {path} has a {'trainable' if trainable else 'fixed'} prior but "
                         f"potential.prior_trainable is {config.potential.prior_trainable}; set it to {trainable} "
                         f"or start from a potential built that way")
    return potential


def build_trainer(config: Config, data: TrainingData, potential, dynamics: DynamicsParameters,
                  run_dir) -> DynamicMatchingTrainer:
    """The dynamic-matching trainer of ``config`` for ``potential`` and ``dynamics`` (classifier and sampler built
    from the configuration), writing to ``run_dir``."""
    return DynamicMatchingTrainer(
        config, potential, build_classifier_from_config(config, data), dynamics, _sampler(config, data, dynamics),
        data.windows[np.arange(len(data.windows))], data.metadata["masses_amu"], data.metadata["temperature_k"],
        data.steps_per_frame, run_dir, classifier_factory=lambda: build_classifier_from_config(config, data))


def load_trainer(run_dir, walkers: Optional[int] = None) -> DynamicMatchingTrainer:
    """The trainer of a dynamic-matching run as its last checkpoint left it (models, friction, optimiser state),
    to inspect or continue by hand; ``walkers`` replaces ``train.walkers``. Nothing in ``run_dir`` is written
    unless the trainer is stepped or saved.

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` has no ``config.yaml`` or no ``checkpoint.pt``.
    """
    run_dir = Path(run_dir)
    checkpoint = run_dir / "checkpoint.pt"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint} not found: run_dir must be a dynamic-matching run directory that "
                                f"has written a checkpoint")
    config = load_config(run_dir / "config.yaml")
    if walkers is not None:
        config = replace(config, train=replace(config.train, walkers=int(walkers)))
    data = load_training_data(config)
    potential = build_potential_from_config(config, data)
    dynamics = dynamics_from_config(config, data)
    trainer = build_trainer(config, data, potential, dynamics, run_dir)
    _resume_trainer(trainer, checkpoint)
    return trainer


def _resume_trainer(trainer: DynamicMatchingTrainer, checkpoint: Path) -> None:
    """Load ``checkpoint.pt`` into the trainer; an unreadable or mismatched file is one error naming it."""
    fix = "delete it to restart dynamic matching from the pre-trained potential, or start a new run directory"
    state = torch_load(checkpoint, "training checkpoint", fix, required=CHECKPOINT_KEYS, weights_only=False)
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise FileFormatError(f"{checkpoint}: the training checkpoint does not fit this run's models "
                              f"({short_reason(err)}); {fix}") from err


def check_run_dir(config: Config, run_dir: Path, resume: bool) -> None:
    """Refuse to start a new run over an existing one, or to resume a run with a configuration it did not have.

    Parameters
    ----------
    config : Config
        The configuration asked for.
    run_dir : Path
        The run directory.
    resume : bool
        Continue the run in ``run_dir``.

    Raises
    ------
    ValueError
        Naming the folder, or the keys that differ from the run's ``config.yaml`` with both values.
    """
    if not resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ValueError(f"run directory {run_dir} is not empty: resume that run (resume=True, `--resume "
                             f"{run_dir}`) or choose another folder")
        return
    stored_path = run_dir / "config.yaml"
    if not stored_path.is_file():
        return
    try:
        stored = load_config(stored_path)
    except ValueError as err:
        raise ValueError(f"{stored_path}: cannot read the run's configuration: {err}") from err
    differing = config_differences(stored, config)
    if differing:
        old, new = to_dict(stored), to_dict(config)
        changes = ", ".join(f"{key} ({_dotted(old, key)!r} in the run, {_dotted(new, key)!r} now)"
                            for key in differing)
        raise ValueError(f"cannot resume {run_dir} with a different configuration: {changes}; only "
                         f"{', '.join(resumable_keys())} may change on resume; start a new run directory to "
                         f"train with other settings")


def _dotted(data: dict, key: str):
    section, name = key.split(".", 1)
    return data[section][name]


def _calibrate_friction(config: Config, data: TrainingData, potential, dynamics, run_dir: Path) -> dict:
    """Set the friction whose CG short-time MSD matches the data (``train.pretrain_friction: msd``, see
    :mod:`openmm_dynmatch.calibration`); the search is kept in ``friction_calibration.json`` and reused on resume."""
    from openmm_dynmatch.calibration import FrictionCalibration, calibrate_friction, lag_series, set_friction

    path = run_dir / "friction_calibration.json"
    if path.exists():
        result = FrictionCalibration.from_dict(json.loads(path.read_text()))
    else:
        cfg = config.train
        result = calibrate_friction(
            potential, data.frames, data.frame_ranges, data.metadata["frame_interval_ps"],
            data.metadata["masses_amu"], dynamics, _sampler(config, data, dynamics, cfg.friction_walkers),
            lags=[lag * config.data.frame_step for lag in lag_series(cfg.friction_max_lag)],
            bounds_per_ps=(cfg.friction_min_per_ps, cfg.friction_max_per_ps), seed=cfg.seed)
        write_json(path, result.to_dict())
    set_friction(dynamics, result.friction_per_ps)
    return dict(result.summary(), file=path.name)


def _correct_dihedrals(config: Config, data: TrainingData, potential, dynamics, run_dir: Path,
                       progress: bool) -> dict:
    """The dihedral-correction stage (:mod:`openmm_dynmatch.correction`): ``train.correction_steps`` steps on the
    dihedrals of ``train.correction_dihedrals``; every step's coefficients are written to ``dihedral_correction.json``
    as it ends, and a resumed run applies the steps already there before taking the rest."""
    from openmm_dynmatch.correction import correct

    cfg = config.train
    path = run_dir / "dihedral_correction.json"
    done = json.loads(path.read_text())["steps"] if path.exists() else []
    timestep = config.dynamics.timestep_ps
    reports = correct(
        potential, dynamics, _sampler(config, data, dynamics, cfg.correction_walkers), data.frames,
        data.metadata["temperature_k"], cfg.correction_steps,
        n_samples=max(1, round(cfg.correction_ps / (data.steps_per_frame * timestep))),
        steps_between=data.steps_per_frame, burn_in_steps=round(cfg.correction_burn_in_ps / timestep), seed=cfg.seed,
        done=done, on_step=lambda steps: write_json(path, {"steps": steps}), progress=progress)
    return {"file": path.name, "dihedrals": reports[-1]["dihedrals"], "steps": len(reports),
            "profile_rms_before_kj_per_mol": [r["profile_rms_before_kj_per_mol"] for r in reports]}


def _cached_probe(path: Path, config: Config, data: TrainingData, potential, dynamics) -> Optional[dict]:
    """The probe AUC of the model as it is now, computed once per run directory (resumes reuse it)."""
    if path.exists():
        return json.loads(path.read_text())
    result = probe_auc(config, data, potential, dynamics)
    write_json(path, result)
    return result


def finish_run(config: Config, data: TrainingData, potential, dynamics, run_dir: Path,
               probes: Optional[dict] = None, stages: Optional[list] = None,
               friction_calibration: Optional[dict] = None, dihedral_correction: Optional[dict] = None) -> dict:
    """Write ``potential.pt``, ``model.pt`` (TorchScript for OpenMM) and ``summary.json``.

    ``stages``: the ``(objective, iterations)`` of the force-matching / relative-entropy stages, whose logs
    ``stage<i>_<objective>.csv`` are summarised (:func:`openmm_dynmatch.baselines.stage_summary`).
    ``friction_calibration``: the summary of the friction calibration, if one ran; ``dihedral_correction``: that of
    the dihedral correction.
    """
    from openmm_dynmatch.openmm.export import export

    metadata = model_metadata(data, config, dynamics)
    save_potential(run_dir / "potential.pt", potential, metadata)
    potential.eval()
    export(potential, run_dir / "model.pt", metadata)
    summary = {"run_dir": str(run_dir), "model": str(run_dir / "model.pt"),
               "potential": str(run_dir / "potential.pt"), "objective": config.train.objective,
               "friction_per_ps": metadata["friction_per_ps"],
               "bead_friction_per_ps": metadata["bead_friction_per_ps"],
               "heldout_auc": {k: v for k, v in (probes or {}).items() if v is not None},
               "stages": _stage_summaries(run_dir, stages or []),
               "validation_force_loss": _validation_force_loss(data, potential)}
    if friction_calibration is not None:
        summary["friction_calibration"] = friction_calibration
    if dihedral_correction is not None:
        summary["dihedral_correction"] = dihedral_correction
    if not all(math.isfinite(f) for f in metadata["bead_friction_per_ps"]):
        raise RuntimeError("training produced a non-finite friction")
    write_json(run_dir / "summary.json", summary)
    return summary


def stage_path(run_dir: Path, index: int, objective: str) -> Path:
    """The potential file ``stage<index>_<objective>.pt`` of a pre-training stage; its log has the suffix ``.csv``."""
    return run_dir / f"stage{index}_{objective}.pt"


def _stage_summaries(run_dir: Path, stages: list) -> list:
    """Summary of every force-matching / relative-entropy stage from its log (resumed runs included)."""
    out = []
    for index, (objective, iterations) in enumerate(stages):
        path = stage_path(run_dir, index, objective).with_suffix(".csv")
        rows = read_log(path, as_rows=True) if path.exists() else []
        out.append({"objective": objective, "log": path.name if path.exists() else None,
                    **stage_summary(rows, iterations)})
    return out


def _validation_force_loss(data: TrainingData, potential) -> Optional[float]:
    """Force-matching loss of the final potential on every validation frame, (kJ/mol/nm)^2; None without
    validation forces."""
    if data.validation_frames is None or data.validation_forces is None:
        return None
    return mean_force_loss(potential, torch.as_tensor(data.validation_frames, dtype=torch.float64),
                           torch.as_tensor(data.validation_forces, dtype=torch.float64))

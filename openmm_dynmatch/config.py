"""Typed configuration: nested dataclasses loaded from YAML.

Unknown keys are rejected with the list of known ones; values are checked against the annotated types;
the resolved configuration is written beside every checkpoint (:func:`write_config`), and command-line flags
override YAML keys through dotted paths (``train.iterations=200``).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from openmm_dynmatch.fileio import write_text


def option(default, help_text: str, choices: tuple = (), valid: str = "", resumable: bool = False):
    """A config field with its help text, allowed values and range, kept for validation and the docs.

    Parameters
    ----------
    default
        Default value.
    help_text : str
        Meaning (and unit) shown in the configuration reference.
    choices : tuple of str, or a callable returning one
        Allowed values of a string key (empty: any); a callable is asked when a config is checked, so that kinds
        registered at run time (nets, classifiers, samplers, integrators) are accepted.
    valid : str
        Allowed range of a numeric key in interval notation, e.g. ``"[1, inf)"`` (at least 1), ``"(0, inf)"``
        (positive), ``"[0, 1)"`` (a fraction below 1); empty: any number. ``None`` always passes for optional keys.
    resumable : bool
        The key may change when a run is resumed (``train --resume``); every other key must match the run's
        ``config.yaml``.
    """
    if valid:
        parse_interval(valid)  # a malformed range fails at import, not when a user's value is checked
    metadata = {"help": help_text, "choices": choices if callable(choices) else tuple(choices), "valid": valid,
                "resumable": resumable}
    if isinstance(default, (list, dict)):  # a fresh copy per config, as dataclasses require of mutable defaults
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def choices_of(item: dataclasses.Field) -> tuple:
    """The allowed values of a config field (empty: any)."""
    choices = item.metadata.get("choices", ())
    return tuple(choices()) if callable(choices) else tuple(choices)


def _net_kinds() -> tuple:
    from openmm_dynmatch.models.potential import NETS

    return tuple(NETS)


def _classifier_kinds() -> tuple:
    from openmm_dynmatch.models.registry import CLASSIFIERS

    return tuple(CLASSIFIERS)


def _integrators() -> tuple:
    from openmm_dynmatch.integrators import integrator_names

    return integrator_names()


def _samplers() -> tuple:
    from openmm_dynmatch.sampling import SAMPLERS

    return tuple(SAMPLERS)


def parse_interval(spec: str) -> tuple:
    """``"[1, inf)"`` -> ``(1.0, True, inf, False)``: lower bound, lower closed, upper bound, upper closed."""
    match = re.fullmatch(r"\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])\s*", spec)
    if match is None:
        raise ValueError(f"range must look like '[0, 1)' or '(0, inf)', got {spec!r}")
    low, high = float(match.group(2)), float(match.group(3))
    return low, match.group(1) == "[", high, match.group(4) == "]"


def check_range(value, spec: str, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` when the number ``value`` lies outside the interval ``spec``."""
    if not spec or value is None:
        return
    low, low_closed, high, high_closed = parse_interval(spec)
    inside_low = value >= low if low_closed else value > low
    inside_high = value <= high if high_closed else value < high
    if not (inside_low and inside_high and math.isfinite(value)):
        raise ValueError(f"{where}: expected a value in {spec} ({describe_interval(spec)}), got {value!r}")


def describe_interval(spec: str) -> str:
    """Words for an interval: ``"[1, inf)"`` -> ``">= 1"``, ``"[0, 1)"`` -> ``">= 0 and < 1"``."""
    low, low_closed, high, high_closed = parse_interval(spec)
    parts = []
    if math.isfinite(low):
        parts.append(f"{'>=' if low_closed else '>'} {low:g}")
    if math.isfinite(high):
        parts.append(f"{'<=' if high_closed else '<'} {high:g}")
    return " and ".join(parts) or "any number"


@dataclass
class DataConfig:
    """Mapped AA (CG-resolution) reference data and how windows are cut from it."""

    cg_path: str = option("", "CG-resolution trajectory: mapped AA data (HDF5 written by `dynmatch map`) or "
                          "CG data imported with `dynmatch import`")
    window_frames: int = option(6, "frames per window, T + 1", valid="[1, inf)")
    frame_step: int = option(1, "saved frames between consecutive frames of a window", valid="[1, inf)")
    window_stride: int = option(1, "saved frames between the starts of consecutive windows", valid="[1, inf)")
    validation_fraction: float = option(0.2, "fraction of the time blocks held out for validation", valid="[0, 1)")
    n_blocks: int = option(5, "contiguous time blocks of the train/validation split", valid="[1, inf)")
    split_seed: int = option(-1, "seed of the choice of validation blocks (-1: train.seed, so runs at other "
                             "training seeds also hold out other data)", valid="[-1, inf)")


@dataclass
class PotentialConfig:
    """The CG potential: a prior (Boltzmann-inverted from the data) plus a network."""

    kind: str = option("internal_mlp", "network kind (MLP of internal coordinates, many-body and chirality-aware, "
                       "the default for molecules up to ~50 beads: internal_mlp; pair sums: pair_mlp, schnet; "
                       "NequIP-style: equivariant; no network: none; or a kind added with register_net)",
                       _net_kinds)
    prior_dihedrals: str = option("none", "bonded dihedrals the prior inverts: every quadruplet (counts a rotation "
                                  "once per quadruplet about its bond), one per rotatable bond, or none (the net "
                                  "learns them); see docs/models.md", ("all", "one_per_bond", "none"))
    prior_trainable: bool = option(False, "train the prior's parameters together with the network")
    dtype: str = option("float32", "dtype of the potential's parameters", ("float32", "float64"))
    net: Optional[Dict[str, Any]] = option(None, "options of the network kind, e.g. {hidden: 64}; the options of "
                                           "every kind are listed below the tables")


@dataclass
class ClassifierConfig:
    """The window classifier of dynamic matching (see docs/classifier.md)."""

    kind: str = option("equivariant", "equivariant (e3nn encoder + temporal convolution) or invariant "
                       "(MLP on distances and displacement lengths; fast, small molecules), or a kind added with "
                       "register_classifier", _classifier_kinds)
    options: Optional[Dict[str, Any]] = option(None, "options of the classifier kind, e.g. {hidden_scalars: 32} "
                                               "(equivariant) or {hidden: 128} (invariant); the options of every "
                                               "kind are listed below the tables")
    chiral: bool = option(True, "tell a window from its mirror image (invariant under proper rotations only); "
                          "false: also reflection-invariant, for achiral systems")
    dtype: str = option("float32", "dtype of the classifier's parameters", ("float32", "float64"))
    internal_motion: bool = option(False, "remove each window's rigid-body motion (every frame superposed onto "
                                   "the previous one) before the classifier sees it, so that only the molecule's "
                                   "internal motion is matched; see docs/concepts.md")
    members: int = option(1, "classifiers of this kind drawn independently and trained side by side on the same "
                          "batches, each as if alone; the generator's reward is minus their mean logit, so the "
                          "friction follows the members' mean verdict instead of one draw's (docs/classifier.md, "
                          "'An ensemble of classifiers'); the classifier's time grows in proportion",
                          valid="[1, inf)")


#: Classifier keys of earlier versions, now options of one kind: old key -> (kind, option).
MOVED_CLASSIFIER_KEYS = {
    "mlp_hidden": ("invariant", "hidden"), "cutoff_nm": ("equivariant", "cutoff_nm"),
    "hidden_scalars": ("equivariant", "hidden_scalars"), "hidden_vectors": ("equivariant", "hidden_vectors"),
    "n_layers": ("equivariant or invariant", "n_layers"), "temporal_channels": ("equivariant", "temporal_channels"),
    "spectral_norm": ("equivariant", "spectral_norm"),
}


@dataclass
class DynamicsConfig:
    """The CG integrator and its (learnable) dynamics parameters."""

    integrator: str = option("langevin", "OpenMM integrator of the CG model (see docs/estimators.md)", _integrators)
    timestep_ps: float = option(0.002, "CG integration time step, ps", valid="(0, inf)")
    friction_per_ps: float = option(10.0, "initial friction coefficient, 1/ps", valid="(0, inf)")
    learn_friction: bool = option(True, "learn the friction (Langevin) or bead diffusion (Brownian)")


@dataclass
class TrainConfig:
    """The optimisation: objective, mode, schedule and stabilisers."""

    objective: str = option("dynamic_matching", "training objective",
                            ("force_matching", "relative_entropy", "dynamic_matching"))
    pretrain: str = option("none", "objective used to pre-train the potential",
                           ("none", "force_matching", "relative_entropy"))
    pretrain_iterations: int = option(200, "iterations of pre-training", valid="[0, inf)")
    pretrain_friction: str = option("none", "after the force-matching / relative-entropy stages, choose the "
                                    "friction whose CG short-time mean-square displacement matches the data "
                                    "(msd; see docs/concepts.md) or keep dynamics.friction_per_ps (none)",
                                    ("none", "msd"))
    friction_walkers: int = option(512, "CG walkers (AA start frames) per friction evaluated by the calibration",
                                   valid="[1, inf)")
    friction_max_lag: int = option(10, "largest lag of the friction calibration in window frame intervals; the "
                                   "lags are 1, 2, 5, 10, 20, 50, ... up to it", valid="[1, inf)")
    friction_min_per_ps: float = option(0.1, "lower end of the friction calibration's search, 1/ps (Brownian: "
                                        "of the mean bead friction)", valid="(0, inf)")
    friction_max_per_ps: float = option(100.0, "upper end of the friction calibration's search, 1/ps", valid="(0, inf)")
    correction_dihedrals: List[Any] = option([], "dihedrals whose distribution is corrected toward the data's "
                                             "after the force-matching / relative-entropy stages, before the "
                                             "friction calibration: 'phi', 'psi' (backbone beads found by name), "
                                             "'i-j-k-l' or [i, j, k, l] bead indices; every correction step samples "
                                             "the model in OpenMM and adds kT ln(P_model / P_data) of each as a "
                                             "Fourier series to the prior (docs/concepts.md, 'Correcting the basin "
                                             "balance'); empty: no correction")
    correction_steps: int = option(1, "Boltzmann-inversion steps of the dihedral correction (each samples the "
                                   "corrected model again)", valid="[1, inf)")
    correction_order: int = option(3, "order of the Fourier series of each dihedral correction", valid="[1, inf)")
    correction_walkers: int = option(128, "CG walkers (started at training frames) that sample the model in every "
                                     "correction step", valid="[1, inf)")
    correction_ps: float = option(100.0, "simulated time per walker and correction step after the burn-in, ps; "
                                  "configurations are kept every window frame interval", valid="(0, inf)")
    correction_burn_in_ps: float = option(10.0, "time per walker discarded before the correction's samples, ps",
                                          valid="[0, inf)")
    pretrain_eval_every: int = option(50, "iterations between evaluations of force matching / relative entropy "
                                      "(objective or pre-training): force loss on training and validation frames, "
                                      "written to stage<i>_<objective>.csv (0: none)", valid="[0, inf)")
    pretrain_patience: int = option(10, "force matching stops when the validation force loss has not improved for "
                                    "this many evaluations and keeps its best parameters (0: never stop)",
                                    valid="[0, inf)")
    pretrain_lr_schedule: str = option("constant", "learning rate of force matching over its iterations: "
                                       "lr_pretrain throughout, or falling from it to zero (cosine)",
                                       ("constant", "cosine"))
    pretrain_average: float = option(0.0, "decay per iteration of an exponential moving average of the "
                                     "force-matching parameters, which is evaluated, stopped on and kept "
                                     "(0: none; e.g. 0.999)", valid="[0, 1)")
    pretrain_eval_frames: int = option(2048, "at most this many training and validation frames per evaluation "
                                       "(a fixed random subset of each)", valid="[1, inf)")
    mode: str = option("conditional", "where CG windows start: at mapped AA frames or in CG equilibrium runs",
                       ("conditional", "free", "conditional_then_free"))
    switch_to_free_at: int = option(-1, "iteration at which conditional_then_free switches (-1: halfway)",
                                    valid="[-1, inf)")
    iterations: int = option(300, "generator (potential) iterations", valid="[1, inf)", resumable=True)
    walkers: int = option(256, "CG walkers (windows) simulated per iteration", valid="[1, inf)")
    walkers_per_start: int = option(1, "conditional mode: CG walkers launched from every start frame; with the "
                                    "mean or loo baseline the baseline is then formed per start frame, removing the "
                                    "reward variance of the start itself (walkers must be a multiple)",
                                    valid="[1, inf)")
    batch_size: int = option(256, "frames per force-matching / relative-entropy step", valid="[1, inf)")
    snr_every: int = option(10, "iterations between gradient signal-to-noise estimates (0: never)", valid="[0, inf)")
    classifier_steps: int = option(3, "classifier updates per generator update (the known-truth chain of "
                                   "docs/concepts.md needed 10 for the friction to settle within 5%)",
                                   valid="[1, inf)")
    classifier_warmup: int = option(50, "classifier-only iterations before the generator moves", valid="[0, inf)")
    classifier_replay: int = option(1, "batches of AA and CG windows every classifier step trains on: the "
                                    "iteration's own and the classifier_replay - 1 before it (1: the iteration's "
                                    "own only); more windows per step, at a classifier cost that grows in "
                                    "proportion (docs/concepts.md, 'What the classifier sees of the friction')",
                                    valid="[1, inf)")
    classifier_batch: int = option(0, "AA and CG windows (of each) in every classifier step, drawn afresh for "
                                   "each step from the windows of classifier_replay (0: all of them in every "
                                   "step); the classifier's cost follows it rather than the walkers",
                                   valid="[0, inf)")
    classifier_reset_every: int = option(0, "generator iterations between re-initialisations of the classifier "
                                         "while the friction learns (0: never): it returns to its initial "
                                         "parameters with a fresh Adam state and an empty replay, and learns alone "
                                         "for classifier_reset_warmup iterations before the generator moves again, "
                                         "so the friction's gradient comes from a classifier that has seen only "
                                         "the recent CG (docs/concepts.md, 'What the classifier sees of the "
                                         "friction'); the classifier-only iterations are logged as warmup and do "
                                         "not advance the learning-rate schedules", valid="[0, inf)")
    classifier_reset_init: str = option("same", "what a re-initialisation of the classifier "
                                        "(train.classifier_reset_every) returns it to: same (the parameters it "
                                        "started the run with) or new (parameters drawn afresh, seeded by the "
                                        "iteration), so that the friction's gradient averages over classifiers' "
                                        "initialisations instead of following one (docs/concepts.md, 'What the "
                                        "classifier sees of the friction')", choices=("same", "new"))
    classifier_reset_warmup: int = option(10, "classifier-only iterations after every re-initialisation of the "
                                          "classifier (train.classifier_reset_every)", valid="[1, inf)")
    friction_first: int = option(0, "iterations after the classifier warm-up in which only the friction learns "
                                 "(its crn gradient) and the potential keeps its pre-trained values, so the joint game "
                                 "starts from a friction matched to that potential; a value of at least "
                                 "iterations learns the friction alone (docs/concepts.md, 'Why the learned "
                                 "friction depends on the run')", valid="[0, inf)")
    friction_then: str = option("joint", "what follows the friction_first phase: joint (potential and friction "
                                "learn together) or frozen (the friction's learning rate decays over the last "
                                "decay_last_fraction of the phase, the friction then stays at the mean of its log "
                                "over the phase's last average_last_fraction, and only the potential learns; the "
                                "friction's crn runs are skipped)", ("joint", "frozen"))
    lr_pretrain: float = option(1e-3, "Adam learning rate of force matching / relative entropy (objective or "
                                "pre-training)", valid="(0, inf)")
    lr_potential: float = option(1e-3, "Adam learning rate of the potential's network in dynamic matching (0: the "
                                 "network stays as pre-training left it; with a fixed prior only the friction "
                                 "learns)", valid="[0, inf)")
    evidence_scaling: bool = option(False, "scale every step of the potential (network and prior) by the "
                                    "batch's evidence that its score-function gradient is more than noise, "
                                    "max(0, 1 - 1/SNR^2) from at least 8 walker groups (the positive-part James-Stein "
                                    "factor; logged as step_scale, with gradient_snr every iteration): noise "
                                    "alone then barely moves the potential, "
                                    "which plain Adam steps by about lr_potential whatever the gradient's "
                                    "signal (docs/concepts.md, 'When the potential's gradient is noise')")
    lr_prior: float = option(0.02, "Adam learning rate of the prior's constants in dynamic matching "
                             "(potential.prior_trainable; log force constants and equilibrium values in units of "
                             "their thermal spread, so one rate suits all)", valid="(0, inf)")
    lr_friction: float = option(0.03, "Adam learning rate of log friction / log diffusion (0.03 took a 4x-off "
                                "friction to the truth in 60-80 iterations on the chain of docs/concepts.md)",
                                valid="(0, inf)")
    friction_gradient: str = option("crn", "estimator of the friction's gradient: crn (central difference in log "
                                    "friction of the mean reward of two extra OpenMM runs with common random "
                                    "numbers; one pair of runs for all frictions, by simultaneous perturbation) "
                                    "or score (the path likelihood, like the potential; its standard "
                                    "error was 86x larger on alanine dipeptide, docs/estimators.md)", ("crn", "score"))
    friction_crn_step: float = option(0.1, "log-friction perturbation of the crn estimator", valid="(0, 1]")
    friction_optimizer: str = option("adam", "optimizer of log friction: adam (steps of about lr_friction whatever "
                                     "the gradient's size) or sgd (steps of lr_friction times the crn gradient, "
                                     "which shrink as the friction nears its fixed point; needs "
                                     "friction_gradient crn; 0.15 suited alanine dipeptide). With the potential "
                                     "held, both brought starts at 1 and 20/ps within 9% of each other "
                                     "(docs/concepts.md, 'Why the learned friction depends on the run')",
                                     ("adam", "sgd"))
    lr_classifier: float = option(1e-3, "Adam learning rate of the classifier", valid="(0, inf)")
    beta1: float = option(0.5, "Adam beta1 of the generator", valid="[0, 1)")
    friction_beta2: float = option(0.9, "Adam beta2 of the log friction (the network keeps 0.999): a short memory "
                                   "of the squared gradient, so the friction's steps stay near lr_friction after "
                                   "the large gradients far from the optimum; with 0.999 a start at 20/ps stalled "
                                   "at 1.2/ps where one at 1/ps reached 0.92/ps (docs/estimators.md)",
                                   valid="[0, 1)")
    decay_last_fraction: float = option(0.33, "fraction of the generator updates (every iteration but the "
                                        "classifier-only ones of the warm-ups) over which learning rates decay to 0",
                                        valid="[0, 1]")
    average_last_fraction: float = option(0.2, "fraction of final iterations whose parameters are averaged",
                                          valid="[0, 1]")
    reward: str = option("neg_logit", "reward per window", ("neg_logit", "softplus"))
    reward_windows: str = option("unseen", "the generator's rewards come from CG windows the classifier has not been "
                                 "trained on yet (unseen: generator update first, then the classifier update on the "
                                 "same windows) or from the windows it was just trained on (seen; biased: the "
                                 "classifier memorises the batch's noise)", ("unseen", "seen"))
    baseline: str = option("mean", "baseline of the score-function estimator", ("mean", "loo", "none"))
    normalize_advantages: bool = option(False, "divide advantages by their standard deviation")
    label_smoothing: float = option(0.0, "label smoothing of the classifier loss", valid="[0, 0.5)")
    r1_weight: float = option(0.0, "weight of the R1 gradient penalty on AA windows", valid="[0, inf)")
    grad_clip: float = option(10.0, "gradient-norm clip of the generator update", valid="(0, inf)")
    ess_threshold: float = option(0.5, "resimulate when the effective sample size fraction falls below", valid="[0, 1]")
    max_reuse: int = option(1, "generator updates per simulated batch (reweighted after the first)", valid="[1, inf)")
    estimator_chunk: int = option(-1, "walkers per backward pass of the path likelihood (0: all at once; -1: as "
                                  "many as fit 81,600 frames x beads^2, e.g. 16 walkers of 50 steps at 10 beads, "
                                  "1 at 100 beads); bounds the estimator's memory, same gradient; the automatic "
                                  "size was the fastest measured (benchmarks/README.md)", valid="[-1, inf)")
    probe_windows: int = option(256, "windows per set of the held-out AUC probe before/after training (0: off)",
                                valid="[0, inf)")
    probe_steps: int = option(300, "Adam steps of the held-out AUC probe classifier", valid="[1, inf)")
    sampler: str = option("local", "what simulates the CG model during training: local (OpenMM in this "
                          "process) or a kind added with register_sampler", _samplers)
    platform: str = option("Reference", "OpenMM platform of CG sampling", resumable=True)
    seed: int = option(0, "seed of every stochastic component", valid="[0, inf)")
    checkpoint_every: int = option(25, "iterations between checkpoints", valid="[1, inf)", resumable=True)
    tensorboard: bool = option(False, "also log to TensorBoard (needs the tensorboard package)", resumable=True)


@dataclass
class Config:
    """Complete configuration of a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    potential: PotentialConfig = field(default_factory=PotentialConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def from_dict(cls, data: Optional[Dict[str, Any]], where: str = "config"):
    """Build dataclass ``cls`` from a (nested) dict, rejecting unknown keys and wrong types."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if cls is ClassifierConfig and set(unknown) & set(MOVED_CLASSIFIER_KEYS):
        moved = [f"{key} -> classifier.options.{MOVED_CLASSIFIER_KEYS[key][1]} ({MOVED_CLASSIFIER_KEYS[key][0]})"
                 for key in unknown if key in MOVED_CLASSIFIER_KEYS]
        raise ValueError(f"{where}: key(s) moved into the options of the classifier kind: {moved}")
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    values = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, f"{where}.{name}")
        choices = choices_of(fields[name])
        if choices and values[name] not in choices:
            raise ValueError(f"{where}.{name}: expected one of {list(choices)}, got {value!r}")
        check_range(values[name], fields[name].metadata.get("valid", ""), f"{where}.{name}")
    result = cls(**values)
    _check_kind_options(result, where)
    if isinstance(result, TrainConfig) and result.walkers % result.walkers_per_start:
        raise ValueError(f"{where}: walkers ({result.walkers}) must be a multiple of walkers_per_start "
                         f"({result.walkers_per_start})")
    if isinstance(result, TrainConfig):
        for i, entry in enumerate(result.correction_dihedrals):
            parse_dihedral_entry(entry, f"{where}.correction_dihedrals[{i}]")
    if isinstance(result, TrainConfig) and result.friction_min_per_ps >= result.friction_max_per_ps:
        raise ValueError(f"{where}: friction_min_per_ps ({result.friction_min_per_ps}) must be below "
                         f"friction_max_per_ps ({result.friction_max_per_ps})")
    return result


#: Dihedrals ``train.correction_dihedrals`` knows by name (backbone dihedrals of a peptide).
DIHEDRAL_NAMES = ("phi", "psi")


def parse_dihedral_entry(entry, where: str = "train.correction_dihedrals"):
    """One entry of ``train.correction_dihedrals``: a name of :data:`DIHEDRAL_NAMES`, or four bead indices given
    as ``'i-j-k-l'`` or ``[i, j, k, l]`` -> the name, or the list of indices.

    Raises
    ------
    ValueError
        Naming ``where`` and the entry.
    """
    if isinstance(entry, str) and entry.strip() in DIHEDRAL_NAMES:
        return entry.strip()
    if isinstance(entry, str) and re.fullmatch(r"\s*\d+(\s*-\s*\d+){3}\s*", entry):
        return [int(i) for i in entry.split("-")]
    if isinstance(entry, (list, tuple)) and len(entry) == 4 and all(
            isinstance(i, int) and not isinstance(i, bool) for i in entry):
        return list(entry)
    raise ValueError(f"{where}: expected {' or '.join(repr(n) for n in DIHEDRAL_NAMES)}, 'i-j-k-l' or "
                     f"[i, j, k, l] bead indices, got {entry!r}")


def _check_kind_options(section, where: str) -> None:
    """Check ``potential.net`` / ``classifier.options`` against the options of the chosen kind."""
    from openmm_dynmatch.models import registry

    if isinstance(section, PotentialConfig):
        from openmm_dynmatch.models.potential import net_class

        registry.check_options(net_class(section.kind), section.net, registry.NET_STRUCTURE, f"{where}.net")
    elif isinstance(section, ClassifierConfig):
        registry.check_options(registry.classifier_class(section.kind), section.options,
                               registry.CLASSIFIER_STRUCTURE, f"{where}.options")


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)][0]
        return _coerce(inner, value, where)
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (inner,) = typing.get_args(hint)
        return [_coerce(inner, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string; take it as the number meant
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def to_dict(config) -> Dict[str, Any]:
    """The configuration as a plain nested dict."""
    return dataclasses.asdict(config)


def apply_overrides(data: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML scalars) to a config dict."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override must look like section.key=value, got {item!r}")
        path, raw = item.split("=", 1)
        keys = path.strip().split(".")
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: '{key}' is not a section")
        node[keys[-1]] = yaml.safe_load(raw)
    return data


def load_config(path=None, overrides: Optional[List[str]] = None) -> Config:
    """Load a YAML configuration (or the defaults when ``path`` is None) and apply overrides."""
    data: Dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
    data = apply_overrides(data, overrides or [])
    return from_dict(Config, data)


def resumable_keys() -> List[str]:
    """Dotted keys (``train.iterations``) that may differ from a run's ``config.yaml`` when it is resumed."""
    return [f"{section.name}.{item.name}" for section in dataclasses.fields(Config)
            for item in dataclasses.fields(typing.get_type_hints(Config)[section.name])
            if item.metadata.get("resumable")]


def config_differences(stored: Config, requested: Config) -> List[str]:
    """Dotted keys whose values differ between two configurations, resumable keys excluded.

    Parameters
    ----------
    stored : Config
        The configuration a run was started with (its ``config.yaml``).
    requested : Config
        The configuration asked for now.

    Returns
    -------
    list of str
        Sorted ``section.key`` names that differ and may not change on resume (empty: the run can resume).
    """
    allowed = set(resumable_keys())
    old, new = to_dict(stored), to_dict(requested)
    return sorted(f"{section}.{key}" for section in old for key in old[section]
                  if old[section][key] != new[section][key] and f"{section}.{key}" not in allowed)


def write_config(config: Config, path) -> None:
    """Write the resolved configuration as YAML (atomically)."""
    write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))


def config_reference() -> str:
    """Markdown reference of every configuration key: type, default and meaning."""
    lines = ["# Configuration reference", "",
             "Generated from `openmm_dynmatch.config`; `tests/test_config.py` checks it matches the code.", "",
             "Values outside a key's allowed range are refused when the configuration is loaded. "
             "`dynmatch train --resume` refuses a configuration that differs from the run's `config.yaml` "
             "except in the keys marked \"may change on `train --resume`\".", ""]
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        lines += [f"## `{section.name}`", "", (cls.__doc__ or "").strip(), "",
                  "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
            hint = hints[item.name]
            type_name = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            meaning = item.metadata.get("help", "")
            if choices_of(item):
                meaning += "; one of " + ", ".join(f"`{c}`" for c in choices_of(item))
            if item.metadata.get("valid"):
                meaning += f"; allowed: {describe_interval(item.metadata['valid'])}"
            if item.metadata.get("resumable"):
                meaning += "; may change on `train --resume`"
            lines.append(f"| `{item.name}` | {type_name} | `{default!r}` | {meaning} |")
        lines.append("")
    return "\n".join(lines + kind_options_reference())


def kind_options_reference() -> List[str]:
    """Markdown lines listing the options (and defaults) of every registered net and classifier kind."""
    from openmm_dynmatch.models import registry
    from openmm_dynmatch.models.potential import NETS, net_class

    lines = []
    for title, key, kinds, get, structure in (
            ("Network options (`potential.net`)", "potential.kind", NETS, net_class, registry.NET_STRUCTURE),
            ("Classifier options (`classifier.options`)", "classifier.kind", registry.CLASSIFIERS,
             registry.classifier_class, registry.CLASSIFIER_STRUCTURE)):
        lines += [f"## {title}", "", f"Options of every `{key}` and their defaults; the constructor's docstring "
                  "gives their meaning.", "", "| kind | options |", "| --- | --- |"]
        for kind in kinds:
            options = registry.constructor_options(get(kind), structure)
            listed = ", ".join(f"`{name}={value!r}`" for name, value in options.items()) or "none"
            lines.append(f"| `{kind}` | {listed} |")
        lines.append("")
    return lines

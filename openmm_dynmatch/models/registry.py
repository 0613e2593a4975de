"""Registries of the configurable model kinds and the options each kind takes.

Potential networks are registered in :data:`openmm_dynmatch.models.potential.NETS` (``register_net``), window
classifiers in :data:`CLASSIFIERS` (:func:`register_classifier`). A kind's *options* are the keyword arguments of
its constructor other than the structural ones the package fills in from the data (bead types, bonds, window
length, ...): ``potential.net`` and ``classifier.options`` of the config are checked against them when the config
is loaded, and the generated configuration reference lists them with their defaults. Registering a class is
therefore all it takes to make a new kind selectable from YAML.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch

#: Constructor arguments of a potential network that the package fills in.
NET_STRUCTURE = ("n_beads", "bead_types", "n_types", "bonds")
#: Constructor arguments of a window classifier that the package fills in (those the class accepts).
CLASSIFIER_STRUCTURE = ("bead_types", "n_beads", "n_types", "window_frames", "frame_only", "chiral", "dtype")

#: Window classifier kinds: a class or ``"module:Class"`` (imported on use). The class takes some of
#: :data:`CLASSIFIER_STRUCTURE` plus its options as keyword arguments, maps windows (B, T+1, N, 3) nm to logits
#: (B,), and may have ``fit_scales(windows)`` to set input scales from AA windows.
CLASSIFIERS: Dict[str, Union[type, str]] = {
    "equivariant": "openmm_dynmatch.models.classifier:WindowClassifier",
    "invariant": "openmm_dynmatch.models.invariant_classifier:InvariantWindowClassifier",
}


def resolve(entry: Union[type, str]) -> type:
    """A registry entry as a class (``"module:Class"`` strings are imported)."""
    if isinstance(entry, str):
        module, name = entry.split(":")
        return getattr(importlib.import_module(module), name)
    return entry


def register_classifier(kind: str, classifier_class) -> None:
    """Add a window classifier kind (selectable as ``classifier.kind``)."""
    CLASSIFIERS[kind] = classifier_class


def classifier_class(kind: str) -> type:
    """The class of classifier ``kind``."""
    if kind not in CLASSIFIERS:
        raise ValueError(f"unknown classifier kind '{kind}'; available: {sorted(CLASSIFIERS)}")
    return resolve(CLASSIFIERS[kind])


def constructor_options(cls: type, structure: Sequence[str]) -> Dict[str, Any]:
    """``{name: default}`` of the keyword arguments of ``cls`` other than ``structure`` (its options)."""
    options = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in structure or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        options[name] = None if parameter.default is inspect.Parameter.empty else parameter.default
    return options


def check_options(cls: type, options: Optional[dict], structure: Sequence[str], where: str) -> dict:
    """``options`` checked against the options of ``cls``: unknown names and values of the wrong type are refused.

    A value must have the type of the option's default (an int is accepted for a float default; any value for
    a default of None).
    """
    options = dict(options or {})
    known = constructor_options(cls, structure)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown} for {cls.__name__}; known: {sorted(known)}")
    for name, value in options.items():
        default = known[name]
        if default is None or value is None and default is None:
            continue
        expected = (int, float) if isinstance(default, float) else type(default)
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, expected):
            raise ValueError(f"{where}.{name}: expected {type(default).__name__} like the default {default!r}, "
                             f"got {value!r}")
    return options


def build_classifier_for(kind: str, bead_types: Sequence[int], window_frames: int, options: Optional[dict] = None,
                         chiral: bool = True, dtype: str = "float32", n_types: Optional[int] = None,
                         scale_windows: Optional[np.ndarray] = None, internal_motion: bool = False,
                         members: int = 1) -> torch.nn.Module:
    """A window classifier of ``kind`` for this molecule and window length, or an ensemble of ``members`` of them.

    Parameters
    ----------
    kind : str
        Key of :data:`CLASSIFIERS`.
    bead_types : sequence of int, length n_beads
    window_frames : int
        Frames per window, ``T + 1``.
    options : dict, optional
        The kind's options (:func:`constructor_options`).
    chiral : bool
        Tell a window from its mirror image (kinds that support it).
    dtype : {"float32", "float64"}
    n_types : int, optional
        Number of bead types (default from ``bead_types``).
    scale_windows : np.ndarray, shape (B, T+1, N, 3), nm, optional
        AA windows that set the classifier's input scales (``fit_scales``).
    internal_motion : bool
        Wrap the classifier so that it sees windows without their rigid-body motion
        (:class:`~openmm_dynmatch.models.internal_motion.InternalMotionClassifier`).
    members : int
        Classifiers built one after the other (each its own draw, each with the same input scales); more than one
        are judged by their mean logit
        (:class:`~openmm_dynmatch.models.classifier_ensemble.ClassifierEnsemble`, ``classifier.members``).
    """
    if members < 1:
        raise ValueError(f"classifier.members must be >= 1, got {members}")
    cls = classifier_class(kind)
    if internal_motion and len(bead_types) < 3:
        raise ValueError(f"classifier.internal_motion needs at least 3 beads to superpose frames, got "
                         f"{len(bead_types)}")
    options = check_options(cls, options, CLASSIFIER_STRUCTURE, f"classifier.options ({kind})")
    types = [int(t) for t in bead_types]
    structure = {"bead_types": types, "n_beads": len(types), "n_types": n_types, "window_frames": int(window_frames),
                 "frame_only": int(window_frames) == 1, "chiral": bool(chiral), "dtype": dtype}
    accepted = inspect.signature(cls.__init__).parameters
    built = []
    for _ in range(members):
        classifier = cls(**{k: v for k, v in structure.items() if k in accepted and v is not None}, **options)
        if internal_motion:
            from .internal_motion import InternalMotionClassifier

            classifier = InternalMotionClassifier(classifier)
        if scale_windows is not None and hasattr(classifier, "fit_scales"):
            classifier.fit_scales(torch.as_tensor(np.asarray(scale_windows)))
        built.append(classifier)
    if members == 1:
        return built[0]
    from .classifier_ensemble import ClassifierEnsemble

    return ClassifierEnsemble(built)

"""Tests of the classifier ensemble (classifier.members)."""
import numpy as np
import pytest
import torch

from openmm_dynmatch.config import load_config
from openmm_dynmatch.models.classifier_ensemble import ClassifierEnsemble
from openmm_dynmatch.models.invariant_classifier import InvariantWindowClassifier
from openmm_dynmatch.runs import TrainingData, build_classifier_from_config


def test_an_ensemble_of_fewer_than_two_classifiers_is_refused():
    with pytest.raises(ValueError, match="members: an ensemble needs at least 2 classifiers, got 1"):
        ClassifierEnsemble([InvariantWindowClassifier(3, 2, hidden=4)])


@pytest.mark.parametrize("members", [1, 3])
def test_classifier_members_builds_independent_draws_with_the_scales_of_the_data(members):
    """``classifier.members: 3`` gives three members of the configured kind whose weights differ, each with the
    input scales a lone classifier fitted to the same windows gets; 1 gives the lone classifier itself."""
    rng = np.random.default_rng(0)
    windows = 0.3 * rng.standard_normal((64, 3, 4, 3)) + np.arange(4)[None, None, :, None] * 0.2
    meta = {"bead_types": [0, 1, 1, 0], "type_names": ["A", "B"], "temperature_k": 300.0}
    data = TrainingData(frames=windows[:, 0], forces=None, windows=windows, validation=None, metadata=meta,
                        steps_per_frame=1)
    config = load_config(overrides=["classifier.kind=invariant", "classifier.dtype=float64", "data.window_frames=3",
                                    f"classifier.members={members}"])
    classifier = build_classifier_from_config(config, data)
    lone = build_classifier_from_config(load_config(overrides=["classifier.kind=invariant", "classifier.dtype=float64",
                                                               "data.window_frames=3"]), data)
    if members == 1:
        assert isinstance(classifier, InvariantWindowClassifier)
        return
    assert isinstance(classifier, ClassifierEnsemble) and len(classifier.members) == 3
    for member in classifier.members:
        assert isinstance(member, InvariantWindowClassifier)
        torch.testing.assert_close(member.feature_mean, lone.feature_mean)
        torch.testing.assert_close(member.feature_scale, lone.feature_scale)
    first = [p.detach() for p in classifier.members[0].parameters()]
    for member in classifier.members[1:]:
        assert all(not torch.equal(a, b.detach()) for a, b in zip(first, member.parameters()))
    batch = torch.as_tensor(windows[:5])
    with torch.no_grad():
        mean = sum(member(batch) for member in classifier.members) / 3
        torch.testing.assert_close(classifier(batch), mean)


def test_build_classifier_for_refuses_an_ensemble_of_no_classifiers():
    from openmm_dynmatch.models.registry import build_classifier_for

    with pytest.raises(ValueError, match="classifier.members must be >= 1, got 0"):
        build_classifier_for("invariant", [0, 1, 1, 0], 3, members=0)

"""Force matching and relative entropy loops: evaluation log, validation loss, early stopping and its restore."""
import csv
import math

import numpy as np
import pytest

from conftest import tolerance
from dimer_toy import HarmonicDimer, boltzmann_dimers, dimer_forces
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.baselines import (LR_SCHEDULES, STAGE_LOG_FIELDS, EarlyStopping, ParameterAverage,
                                       stage_summary, train_force_matching, train_relative_entropy)

K, R0 = 500.0, 0.3


def _force_loss(frames, forces, k, r0):
    """``mean over frames and beads |F - F_model|^2`` with the dimer's analytic forces, (kJ/mol/nm)^2."""
    return float(((forces - dimer_forces(frames, k, r0)) ** 2).sum(-1).mean())


def _model_k_r0(model):
    return math.exp(float(model.log_k.detach())), float(model.r0.detach())


def _read(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def _stop_index_by_the_rule(losses, patience):
    """First evaluation after which training stops: the best (lowest finite, earliest) loss so far lies
    ``patience`` or more evaluations back. None when it never stops."""
    if patience == 0:
        return None
    for i in range(len(losses)):
        finite = [j for j in range(i + 1) if math.isfinite(losses[j])]
        best = min(finite, key=lambda j: (losses[j], j)) if finite else -1
        if i - best >= patience:
            return i
    return None


@pytest.mark.parametrize("patience", [0, 1, 2, 3, 5])
def test_early_stopping_follows_the_rule(patience, rng):
    sequences = [rng.normal(size=30).cumsum() for _ in range(20)]
    sequences += [np.array([3.0, 2.0, 2.0, 2.5, 1.0, 1.0, 1.0, 0.5]),            # ties do not improve
                  np.array([np.nan, np.nan, 2.0, np.inf, 1.0, np.nan, np.nan]),  # non-finite never improves
                  np.linspace(5.0, 1.0, 12)]                                    # always improving
    for losses in sequences:
        stopper = EarlyStopping(patience)
        stops = [stopper.update(x) for x in losses]
        expected = _stop_index_by_the_rule(list(losses), patience)
        assert (stops.index(True) if True in stops else None) == expected, (list(losses), patience)


def test_early_stopping_rejects_a_negative_patience():
    with pytest.raises(ValueError, match="patience must be a non-negative integer"):
        EarlyStopping(-1)


@pytest.fixture
def dimer_data(rng):
    """Boltzmann frames of the true dimer with exact forces, split into training and validation."""
    frames = boltzmann_dimers(K, R0, 500, rng)
    forces = dimer_forces(frames, K, R0)
    return frames[:400], forces[:400], frames[400:], forces[400:]


def test_force_matching_logs_training_and_validation_loss(tmp_path, dimer_data):
    frames, forces, val_frames, val_forces = dimer_data
    model = HarmonicDimer(0.3 * K, 1.1 * R0)
    k0, r00 = _model_k_r0(model)
    log = tmp_path / "stage0_force_matching.csv"
    history = train_force_matching(model, frames, forces, iterations=25, lr=0.02, batch_size=64, seed=3,
                                   progress=False, validation_frames=val_frames, validation_forces=val_forces,
                                   eval_every=10, patience=0, eval_frames=1000, log_path=log)
    fields, rows = _read(log)
    assert tuple(fields) == STAGE_LOG_FIELDS
    assert [int(r["iteration"]) for r in rows] == [0, 10, 20, 25]  # before the first step, every 10, after the last
    assert len(history.evaluations) == 4 and history.iterations_done == 25 and not history.stopped_early
    # before any step: the losses of the initial parameters on all training and validation frames
    tol = tolerance(np.float64)
    np.testing.assert_allclose(float(rows[0]["train_force_loss"]), _force_loss(frames, forces, k0, r00), **tol)
    np.testing.assert_allclose(float(rows[0]["validation_force_loss"]),
                               _force_loss(val_frames, val_forces, k0, r00), **tol)
    assert rows[0]["batch_loss"] == ""
    # after the last step: the final parameters (patience 0 keeps them)
    k, r0 = _model_k_r0(model)
    np.testing.assert_allclose(float(rows[-1]["validation_force_loss"]),
                               _force_loss(val_frames, val_forces, k, r0), **tol)
    # batch_loss: the mean minibatch loss of the iterations since the previous evaluation
    np.testing.assert_allclose([float(r["batch_loss"]) for r in rows[1:]],
                               [np.mean(history.losses[a:b]) for a, b in ((0, 10), (10, 20), (20, 25))], **tol)
    wall = [float(r["wall_time_s"]) for r in rows]
    assert wall == sorted(wall) and wall[0] >= 0
    assert float(rows[-1]["validation_force_loss"]) < 0.5 * float(rows[0]["validation_force_loss"])


def test_force_matching_stops_early_and_restores_the_best_parameters(tmp_path, dimer_data):
    """Validation forces from a dimer with a longer bond: on the way from r0 = 0.25 to the training data's 0.30
    the model passes the validation optimum (0.27), so the validation loss falls, then rises."""
    frames, forces, val_frames, _ = dimer_data
    val_forces = dimer_forces(val_frames, K, 0.27)
    log = tmp_path / "fm.csv"
    model = HarmonicDimer(K, 0.25)
    history = train_force_matching(model, frames, forces, iterations=400, lr=0.002, batch_size=64, seed=1,
                                   progress=False, validation_frames=val_frames, validation_forces=val_forces,
                                   eval_every=5, patience=3, log_path=log)
    _, rows = _read(log)
    validation = [float(r["validation_force_loss"]) for r in rows]
    assert history.stopped_early and history.iterations_done < 400
    assert len(rows) == len(history.evaluations) == history.iterations_done // 5 + 1
    best = int(np.argmin(validation))
    assert history.best_iteration == int(rows[best]["iteration"]) == 5 * best
    assert history.iterations_done == history.best_iteration + 3 * 5  # three evaluations without improvement
    # the returned parameters are those after best_iteration steps of the same (seeded) run without validation
    reference = HarmonicDimer(K, 0.25)
    train_force_matching(reference, frames, forces, iterations=history.best_iteration, lr=0.002, batch_size=64,
                         seed=1, progress=False)
    assert _model_k_r0(model) == _model_k_r0(reference)
    np.testing.assert_allclose(_force_loss(val_frames, val_forces, *_model_k_r0(model)), min(validation),
                               **tolerance(np.float64))
    summary = stage_summary(_read(log)[1], 400)
    assert summary["stopped_early"] and summary["stopped_at_iteration"] == history.iterations_done
    assert summary["best_iteration"] == history.best_iteration
    assert summary["best_validation_force_loss"] == pytest.approx(min(validation), rel=1e-12)
    assert summary["final_validation_force_loss"] == pytest.approx(validation[-1], rel=1e-12)


def test_force_matching_without_validation_never_stops(dimer_data):
    frames, forces, _, _ = dimer_data
    history = train_force_matching(HarmonicDimer(K, 0.25), frames, forces, iterations=12, lr=0.01, batch_size=32,
                                   seed=0, progress=False, eval_every=4, patience=1)
    assert history.iterations_done == 12 and not history.stopped_early and history.best_iteration is None
    assert all(math.isnan(r["validation_force_loss"]) for r in history.evaluations)
    assert all(math.isfinite(r["train_force_loss"]) for r in history.evaluations)


class _RecordingDimer(HarmonicDimer):
    """The dimer that records its (log k, r0) at every forward call: with no evaluations, call t of a force-matching
    run sees the parameters after t optimiser steps."""

    def __init__(self, k, r0):
        super().__init__(k, r0)
        self.seen = []

    def forward(self, positions):
        self.seen.append((float(self.log_k.detach()), float(self.r0.detach())))
        return super().forward(positions)


def test_cosine_schedule_values():
    cosine = LR_SCHEDULES["cosine"]
    assert [cosine(t, 40) for t in (0, 20, 40, 60)] == pytest.approx([1.0, 0.5, 0.0, 0.0], abs=1e-15)
    assert cosine(10, 40) == pytest.approx((1.0 + math.sqrt(0.5)) / 2.0, rel=1e-14)
    assert LR_SCHEDULES["constant"](7, 40) == 1.0


def test_force_matching_cosine_schedule_is_adam_at_the_decayed_rate(dimer_data):
    """The loop again by hand: the same minibatches, Adam with its rate set to lr (1 + cos(pi t / n)) / 2 before
    step t."""
    import torch

    from openmm_dynmatch.estimators import force_matching_loss

    frames, forces, _, _ = dimer_data
    n, lr, batch, seed = 30, 0.02, 64, 3
    model = HarmonicDimer(0.3 * K, 1.1 * R0)
    train_force_matching(model, frames, forces, iterations=n, lr=lr, batch_size=batch, seed=seed, progress=False,
                         lr_schedule="cosine")
    by_hand = HarmonicDimer(0.3 * K, 1.1 * R0)
    adam = torch.optim.Adam(by_hand.parameters(), lr=lr)
    rng = np.random.default_rng([seed, 101])
    x, f = torch.as_tensor(frames), torch.as_tensor(forces)
    for t in range(n):
        pick = torch.as_tensor(rng.integers(0, len(frames), size=batch))
        adam.param_groups[0]["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * t / n))
        adam.zero_grad()
        force_matching_loss(by_hand, x[pick], f[pick]).backward()
        adam.step()
    assert _model_k_r0(model) == pytest.approx(_model_k_r0(by_hand), rel=1e-12)
    assert _model_k_r0(model) != pytest.approx(_model_k_r0(HarmonicDimer(0.3 * K, 1.1 * R0)), rel=1e-6)


def test_force_matching_keeps_the_moving_average_of_its_own_parameters(dimer_data):
    """With ``average`` the optimiser's path is unchanged and the potential returned is its exponential moving
    average, written out again from the parameters a run without averaging passes through."""
    frames, forces, _, _ = dimer_data
    n, decay = 30, 0.9
    recorded = _RecordingDimer(0.3 * K, 1.1 * R0)
    train_force_matching(recorded, frames, forces, iterations=n, lr=0.02, batch_size=64, seed=3, progress=False,
                         lr_schedule="cosine")
    path = np.array(recorded.seen[:n] + [_model_k_r0(recorded)])
    path[-1, 0] = math.log(path[-1, 0])  # _model_k_r0 gives k, the parameter is log k
    average = path[0].copy()
    for t in range(n):
        d = min(decay, (1.0 + t) / (10.0 + t))
        average = d * average + (1.0 - d) * path[t + 1]
    model = HarmonicDimer(0.3 * K, 1.1 * R0)
    train_force_matching(model, frames, forces, iterations=n, lr=0.02, batch_size=64, seed=3, progress=False,
                         lr_schedule="cosine", average=decay)
    log_k, r0 = float(model.log_k.detach()), float(model.r0.detach())
    np.testing.assert_allclose([log_k, r0], average, rtol=1e-12)
    assert abs(r0 - path[-1, 1]) > 1e-4  # the average is not the last step


def test_force_matching_with_averaging_stops_on_the_average(tmp_path, dimer_data):
    """Evaluations and the early stop use the averaged parameters: the kept potential's validation loss is the
    lowest one logged."""
    frames, forces, val_frames, _ = dimer_data
    val_forces = dimer_forces(val_frames, K, 0.27)
    model = HarmonicDimer(K, 0.25)
    history = train_force_matching(model, frames, forces, iterations=400, lr=0.002, batch_size=64, seed=1,
                                   progress=False, validation_frames=val_frames, validation_forces=val_forces,
                                   eval_every=5, patience=3, average=0.8)
    validation = [r["validation_force_loss"] for r in history.evaluations]
    assert history.stopped_early
    np.testing.assert_allclose(_force_loss(val_frames, val_forces, *_model_k_r0(model)), min(validation),
                               **tolerance(np.float64))


def test_parameter_average_swaps_back_and_rejects_bad_decays():
    import torch

    layer = torch.nn.Linear(2, 1)
    own = [p.detach().clone() for p in layer.parameters()]
    average = ParameterAverage(layer, 0.99)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(1.0)
    average.update()
    with average.swapped():
        inside = [p.detach().clone() for p in layer.parameters()]
    for a, b, c in zip(inside, own, layer.parameters()):
        torch.testing.assert_close(a, b + 0.9)  # d_0 = 0.1: 90% of the step
        torch.testing.assert_close(c.detach(), b + 1.0)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="decay"):
            ParameterAverage(layer, bad)


@pytest.mark.parametrize("kwargs, message", [({"lr_schedule": "linear"}, "lr_schedule"),
                                             ({"average": 1.0}, "average")])
def test_force_matching_rejects_bad_schedule_and_average(dimer_data, kwargs, message):
    frames, forces, _, _ = dimer_data
    with pytest.raises(ValueError, match=message):
        train_force_matching(HarmonicDimer(K, R0), frames, forces, iterations=2, lr=0.01, batch_size=8, seed=0,
                             progress=False, **kwargs)


LANGEVIN_1PS = DynamicsParameters("langevin", 1.0, [0, 0])


class _JitterSampler:
    """Stand-in for the OpenMM sampler: walkers take small Gaussian steps, whatever the model."""

    n_walkers = 16

    def set_model(self, potential, dynamics):
        pass

    def advance(self, positions, n_steps, seed):
        from openmm_dynmatch.sampling import Advanced

        return Advanced(positions + 0.01 * np.random.default_rng(seed).normal(size=positions.shape))


def test_relative_entropy_logs_its_surrogate_and_the_validation_force_loss(tmp_path, dimer_data):
    frames, forces, val_frames, val_forces = dimer_data
    model = HarmonicDimer(0.5 * K, R0)
    log = tmp_path / "stage1_relative_entropy.csv"
    history = train_relative_entropy(model, frames, _JitterSampler(), LANGEVIN_1PS, 2.494, iterations=6,
                                     lr=0.01, batch_size=32, steps_per_iteration=5, seed=0, progress=False,
                                     forces=forces, validation_frames=val_frames, validation_forces=val_forces,
                                     eval_every=3, log_path=log)
    fields, rows = _read(log)
    assert tuple(fields) == STAGE_LOG_FIELDS and [int(r["iteration"]) for r in rows] == [0, 3, 6]
    np.testing.assert_allclose([float(r["batch_loss"]) for r in rows[1:]],
                               [np.mean(history.losses[:3]), np.mean(history.losses[3:])], **tolerance(np.float64))
    np.testing.assert_allclose(float(rows[-1]["validation_force_loss"]),
                               _force_loss(val_frames, val_forces, *_model_k_r0(model)), **tolerance(np.float64))
    # without forces only the surrogate is logged
    history = train_relative_entropy(HarmonicDimer(K, R0), frames, _JitterSampler(), LANGEVIN_1PS, 2.494,
                                     iterations=2, lr=0.01, batch_size=32, steps_per_iteration=5, seed=0,
                                     progress=False, eval_every=1, log_path=log)
    _, rows = _read(log)
    assert len(rows) == 3 and all(r["train_force_loss"] == r["validation_force_loss"] == "" for r in rows)

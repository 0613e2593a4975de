"""Dynamic-matching trainer: estimator gradients against finite differences of OpenMM simulations, recovery of
a known model, exact resume, and the pieces of the loop against formulas written out again."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dimer_toy import (MASS_AMU, TEMPERATURE_K, HarmonicDimer, boltzmann_dimers, dimer_metadata,
                       simulate_dimer_data)
from openmm_dynmatch import estimators
from openmm_dynmatch.baselines import train_force_matching
from openmm_dynmatch.config import Config, DynamicsConfig, TrainConfig
from openmm_dynmatch.data import make_windows
from openmm_dynmatch.dynamics import DynamicsParameters
from openmm_dynmatch.models.classifier_ensemble import ClassifierEnsemble
from openmm_dynmatch.models.invariant_classifier import InvariantWindowClassifier
from openmm_dynmatch.openmm.sampler import OpenMMSampler
from openmm_dynmatch.train import (DynamicMatchingTrainer, classifier_loss, rewards_from_logits,
                                   windows_from_paths)
from openmm_dynmatch.units import kt_kj_per_mol

KT = kt_kj_per_mol(TEMPERATURE_K)
TRUE_K, TRUE_R0 = 500.0, 0.3
SETTINGS = {  # integrator: (true friction 1/ps, timestep ps)
    "brownian": (100.0, 0.02),
    "langevin": (20.0, 0.004),
}


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------ loop pieces
def test_rewards_and_classifier_loss_follow_their_formulas():
    logits = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    assert torch.equal(rewards_from_logits(logits, "neg_logit"), -logits)
    expected = torch.log1p(torch.exp(-logits))
    torch.testing.assert_close(rewards_from_logits(logits, "softplus"), expected)
    with pytest.raises(ValueError, match="unknown reward 'x'"):
        rewards_from_logits(logits, "x")
    aa, cg = torch.tensor([1.0, -0.5]), torch.tensor([0.2, -1.0])
    smooth = 0.1
    by_hand = 0.5 * (-(((1 - smooth) * F.logsigmoid(aa) + smooth * F.logsigmoid(-aa)).mean())
                     - F.logsigmoid(-cg).mean())
    torch.testing.assert_close(classifier_loss(aa, cg, smooth), by_hand)


def test_windows_from_paths_take_every_sth_step():
    paths = torch.arange(2 * 7 * 1 * 3, dtype=torch.float64).reshape(2, 7, 1, 3)
    windows = windows_from_paths(paths, 3)
    assert windows.shape == (2, 3, 1, 3)
    assert torch.equal(windows[:, 2], paths[:, 6])


def test_brownian_per_type_friction_is_realised_by_mass_substitution():
    from openmm_dynmatch.openmm.integrators import openmm_masses_and_friction

    dyn = DynamicsParameters("brownian", 10.0, [0, 1, 1])
    with torch.no_grad():
        dyn.log_friction.copy_(torch.log(torch.tensor([5.0, 40.0], dtype=torch.float64)))
    masses = np.array([12.0, 14.0, 16.0])
    openmm_masses, openmm_friction = openmm_masses_and_friction("brownian", masses, dyn.friction_per_bead().detach())
    diffusion_true = KT / (np.array([5.0, 40.0, 40.0]) * masses)
    np.testing.assert_allclose(KT / (openmm_friction * openmm_masses), diffusion_true, rtol=1e-12)
    langevin = DynamicsParameters("langevin", 10.0, [0, 1, 1])
    same_masses, friction = openmm_masses_and_friction("langevin", masses, langevin.friction_per_bead().detach())
    np.testing.assert_allclose(same_masses, masses)
    assert friction == pytest.approx(10.0)
    with pytest.raises(ValueError, match="one friction for all particles"):
        openmm_masses_and_friction("langevin", masses, [1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="unknown integrator"):
        DynamicsParameters("verlet", 1.0, [0])
    with pytest.raises(ValueError, match="friction_per_ps"):
        DynamicsParameters("langevin", -1.0, [0])


@pytest.mark.parametrize("integrator", ["brownian", "langevin"])
def test_sampler_paths_reconstruct_to_unit_noise_with_the_refreshed_model(integrator):
    """OpenMM paths from the sampler, after a parameter update and with per-type Brownian frictions, give
    N(0, 1) noise when rebuilt with the *updated* model (and not with the stale one)."""
    friction, dt = SETTINGS[integrator]
    potential = HarmonicDimer(5000.0, 0.35)
    dyn = DynamicsParameters(integrator, friction, [0, 1])
    if integrator == "brownian":
        with torch.no_grad():
            dyn.log_friction.copy_(torch.log(torch.tensor([friction, 3 * friction], dtype=torch.float64)))
    meta = dict(dimer_metadata(integrator, friction, dt), bead_types=[0, 1], type_names=["A", "B"])
    sampler = OpenMMSampler(meta, n_walkers=200)
    sampler.set_model(potential, dyn)
    with torch.no_grad():
        potential.log_k.fill_(math.log(TRUE_K))
        potential.r0.fill_(TRUE_R0)
    sampler.set_model(potential, dyn)
    starts = boltzmann_dimers(TRUE_K, TRUE_R0, 200, np.random.default_rng(1))
    paths = sampler.record(starts, 20, seed=5)
    noise = _noise(paths, potential, dyn, dt)
    assert abs(float(noise.mean())) < 4 / math.sqrt(noise.numel())
    assert abs(float(noise.var()) - 1) < 6 * math.sqrt(2 / noise.numel())
    stale = HarmonicDimer(5000.0, 0.35)
    assert abs(float(_noise(paths, stale, dyn, dt).var()) - 1) > 0.05


def _noise(paths, potential, dyn, dt):
    force_fn = estimators.potential_force_fn(potential, create_graph=False)
    masses = torch.tensor([MASS_AMU] * 2, dtype=torch.float64)
    friction = dyn.friction_per_bead().detach()
    if dyn.integrator == "brownian":
        return estimators.brownian_log_likelihood(paths.positions, force_fn, masses, friction, dt, KT,
                                                  return_noise=True)[1]
    return estimators.langevin_middle_log_likelihood(paths.positions, paths.velocities, force_fn, masses, friction,
                                                     dt, KT, return_noise=True)[1]


# ------------------------------------------------------------------ score function vs finite differences
def _displacement_reward(paths: torch.Tensor) -> torch.Tensor:
    """g = squared displacement of bead 0 plus squared bond length at the window's end, nm^2."""
    end, start = paths[:, -1], paths[:, 0]
    return ((end[:, 0] - start[:, 0]) ** 2).sum(-1) + ((end[:, 1] - end[:, 0]) ** 2).sum(-1)


def _mean_reward(sampler, potential, dyn, starts, n_steps, seed):
    sampler.set_model(potential, dyn)
    return _displacement_reward(sampler.record(starts, n_steps, seed).positions)


@pytest.mark.parametrize("integrator", ["brownian", "langevin"])
@pytest.mark.parametrize("parameter", ["log_k", "log_friction"])
def test_score_function_gradient_equals_finite_differences_of_openmm(integrator, parameter):
    friction, dt = SETTINGS[integrator]
    n_walkers, seed, h = 3000, 11, 0.03
    n_steps = 12 if integrator == "brownian" else 50  # Langevin: long enough for friction to matter
    potential = HarmonicDimer(TRUE_K, TRUE_R0)
    dyn = DynamicsParameters(integrator, friction, [0, 0])
    sampler = OpenMMSampler(dimer_metadata(integrator, friction, dt), n_walkers)
    starts = np.repeat(np.array([[[0.0, 0.0, 0.0], [TRUE_R0 + 0.05, 0.0, 0.0]]]), n_walkers, axis=0)
    owner = potential if parameter == "log_k" else dyn
    param = getattr(owner, parameter)

    # finite differences with common random numbers (same OpenMM seeds)
    rewards = []
    for sign in (+1, -1):
        with torch.no_grad():
            param += sign * h
        rewards.append(_mean_reward(sampler, potential, dyn, starts, n_steps, seed))
        with torch.no_grad():
            param -= sign * h
    per_walker_fd = (rewards[0] - rewards[1]) / (2 * h)
    fd, fd_se = float(per_walker_fd.mean()), float(per_walker_fd.std() / math.sqrt(n_walkers))

    # score function at theta, from OpenMM paths, in 30 groups for the error bar
    sampler.set_model(potential, dyn)
    paths = sampler.record(starts, n_steps, seed + 1)
    reward = _displacement_reward(paths.positions)
    force_fn = estimators.potential_force_fn(potential, create_graph=True)
    masses = torch.tensor([MASS_AMU] * 2, dtype=torch.float64)
    if integrator == "brownian":
        log_p = estimators.brownian_log_likelihood(paths.positions, force_fn, masses, dyn.friction_per_bead(), dt, KT)
    else:
        log_p = estimators.langevin_middle_log_likelihood(paths.positions, paths.velocities, force_fn, masses,
                                                          dyn.friction_per_bead(), dt, KT)
    terms = estimators.advantages(reward, "mean").detach() * log_p
    rows = estimators.grouped_gradients(terms, [param], n_groups=30)[:, 0]
    sf, sf_se = float(rows.mean()), float(rows.std() / math.sqrt(len(rows)))

    error = math.sqrt(fd_se**2 + sf_se**2)
    assert abs(fd) > 5 * fd_se, "the reward must depend measurably on the parameter for the test to mean anything"
    assert abs(sf - fd) < 4 * error, f"score function {sf:.4g} +- {sf_se:.2g} vs FD {fd:.4g} +- {fd_se:.2g}"


# ------------------------------------------------------------------ the friction's common-random-number gradient
class _FreeBeads(torch.nn.Module):
    """Zero potential (free Brownian beads), with one parameter so that the generator has something to hold."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.unused * positions.to(torch.float64).sum(dim=(1, 2)) * 0.0


class _DisplacementLogit(torch.nn.Module):
    """Logit ``-|x_T - x_0|^2`` of bead 0 (nm^2), so that the reward ``g = -logit`` is its squared displacement."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return -((windows[:, -1, 0] - windows[:, 0, 0]) ** 2).sum(-1) + 0.0 * self.unused


def _free_trainer(tmp_path, walkers, friction, dt, steps_per_frame, potential=None, classifier=None,
                  classifier_factory=None, **train):
    config = Config(train=TrainConfig(walkers=walkers, checkpoint_every=10**6, snr_every=0, **train),
                    dynamics=DynamicsConfig(integrator="brownian", timestep_ps=dt, friction_per_ps=friction))
    windows = np.zeros((4, 3, 2, 3))
    windows[:, :, 1, 0] = TRUE_R0
    sampler = OpenMMSampler(dimer_metadata("brownian", friction, dt), walkers)
    return DynamicMatchingTrainer(config, potential or _FreeBeads(), classifier or _DisplacementLogit(),
                                  DynamicsParameters("brownian", friction, [0, 0]), sampler, windows, [MASS_AMU] * 2,
                                  TEMPERATURE_K, steps_per_frame, tmp_path / "run", classifier_factory)


def test_friction_crn_gradient_of_free_brownian_beads_is_the_analytic_derivative(tmp_path):
    """Free Brownian beads: the squared displacement over ``n`` steps has mean ``6 D n dt`` with
    ``D = kT / (gamma m)``, so ``d E[g] / d log gamma = -6 D n dt``; with common random numbers each walker's
    displacement scales exactly like ``gamma^(-1/2)``, so the central difference is that times ``sinh(h) / h``."""
    friction, dt, n_steps, walkers, h = 50.0, 0.01, 20, 2000, 0.1
    trainer = _free_trainer(tmp_path, walkers, friction, dt, 10, friction_crn_step=h)
    starts = np.zeros((walkers, 2, 3))
    starts[:, 1, 0] = TRUE_R0
    gradient, stats = trainer.friction_crn_gradient(starts, n_steps)
    mean_square = 6 * KT / (friction * MASS_AMU) * n_steps * dt
    expected = -mean_square * math.sinh(h) / h
    relative_se = math.sqrt(2 / 3) / math.sqrt(walkers)       # a chi-square with 3 degrees of freedom
    assert gradient.shape == (1,)
    assert float(gradient[0]) == pytest.approx(expected, rel=4 * relative_se)
    assert stats["friction_crn_gradient"] == float(gradient[0])
    assert trainer.dynamics.friction_per_bead()[0].item() == pytest.approx(friction), "the friction is restored"


def test_trainer_steps_the_friction_with_the_crn_gradient(tmp_path):
    """One adversarial iteration: the reward (squared displacement) falls as the friction rises, so the first Adam
    step raises log friction by exactly ``lr_friction``, and the score-function path does not touch it."""
    trainer = _free_trainer(tmp_path, 64, 50.0, 0.01, 10, classifier_warmup=0, lr_friction=0.05)
    before = float(trainer.dynamics.log_friction.detach()[0])
    row = trainer.step()
    assert row["friction_crn_gradient"] < -3 * row["friction_crn_se"]
    assert float(trainer.dynamics.log_friction.detach()[0]) - before == pytest.approx(0.05, rel=1e-4)  # Adam eps


@pytest.mark.parametrize("replay, batch", [(1, 0), (2, 0), (2, 5)])
def test_classifier_steps_train_on_the_replayed_batches_and_report_the_current_one(tmp_path, replay, batch):
    """With ``classifier_replay = 2`` the second update's steps are Adam steps on the loss of both batches' windows
    together (the AA-vs-CG cross entropy written out again here); with 1, on the second batch alone; with
    ``classifier_batch = 5``, on 5 AA and 5 CG windows of those drawn for each step by the iteration's stream 2.
    The reported accuracy is that of the second batch; the batches travel in the checkpoint."""
    trainer = _free_trainer(tmp_path, 8, 50.0, 0.01, 10, classifier_steps=2, classifier_replay=replay,
                            classifier_batch=batch)
    torch.manual_seed(0)
    trainer.classifier = InvariantWindowClassifier(2, 3, hidden=8)
    reference = InvariantWindowClassifier(2, 3, hidden=8)
    reference.load_state_dict(trainer.classifier.state_dict())
    trainer._build_optimizers()
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 2, 3, generator=generator), 1.1 * torch.randn(8, 3, 2, 3, generator=generator))
               for _ in range(2)]
    trainer.classifier_update(*batches[0])
    reference.load_state_dict(trainer.classifier.state_dict())
    optimizer = torch.optim.Adam(reference.parameters(), lr=trainer.train_cfg.lr_classifier, betas=(0.5, 0.999))
    optimizer.load_state_dict(copy.deepcopy(trainer.classifier_optimizer.state_dict()))  # Adam's moments, not shared
    row = trainer.classifier_update(*batches[1])

    pool_aa = torch.cat([b[0] for b in batches[2 - replay:]])
    pool_cg = torch.cat([b[1] for b in batches[2 - replay:]])
    rng = np.random.default_rng([trainer.train_cfg.seed, trainer.iteration, 2])
    for _ in range(2):
        aa, cg = pool_aa, pool_cg
        if batch:
            aa = pool_aa[torch.as_tensor(rng.choice(len(pool_aa), batch, replace=False))]
            cg = pool_cg[torch.as_tensor(rng.choice(len(pool_cg), batch, replace=False))]
        optimizer.zero_grad()
        loss = -0.5 * (F.logsigmoid(reference(aa)).mean() + F.logsigmoid(-reference(cg)).mean())
        loss.backward()
        optimizer.step()
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(trainer.classifier.state_dict()[name], value)
    with torch.no_grad():
        logits_aa, logits_cg = reference(batches[1][0]), reference(batches[1][1])
    accuracy = 0.5 * float((logits_aa > 0).double().mean() + (logits_cg <= 0).double().mean())
    assert row["classifier_accuracy"] == pytest.approx(accuracy)
    state = trainer.state_dict()["classifier_replay"]
    assert len(state) == replay and torch.equal(state[-1][1], batches[1][1])


def test_each_member_of_a_classifier_ensemble_trains_as_if_alone_and_the_ensemble_reports_the_mean_logit(tmp_path):
    """Two members trained side by side: after two updates of two Adam steps each equals a copy of its start
    trained alone on the same batches with the cross entropy written out again; the ensemble's logit is the
    members' mean, and the reported accuracy is that of the mean."""
    trainer = _free_trainer(tmp_path, 8, 50.0, 0.01, 10, classifier_steps=2)
    torch.manual_seed(0)
    trainer.classifier = ClassifierEnsemble([InvariantWindowClassifier(2, 3, hidden=8, dtype="float64")
                                             for _ in range(2)])
    alone = [copy.deepcopy(member) for member in trainer.classifier.members]
    trainer._build_optimizers()
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 2, 3, generator=generator, dtype=torch.float64),
                1.1 * torch.randn(8, 3, 2, 3, generator=generator, dtype=torch.float64)) for _ in range(2)]
    for aa, cg in batches:
        row = trainer.classifier_update(aa, cg)
    for member, reference in zip(trainer.classifier.members, alone):
        optimizer = torch.optim.Adam(reference.parameters(), lr=trainer.train_cfg.lr_classifier, betas=(0.5, 0.999))
        for aa, cg in batches:
            for _ in range(2):
                optimizer.zero_grad()
                (-0.5 * (F.logsigmoid(reference(aa)).mean() + F.logsigmoid(-reference(cg)).mean())).backward()
                optimizer.step()
        for name, value in reference.state_dict().items():
            torch.testing.assert_close(member.state_dict()[name], value)
    aa, cg = batches[1]
    with torch.no_grad():
        mean_aa = 0.5 * (alone[0](aa) + alone[1](aa))
        mean_cg = 0.5 * (alone[0](cg) + alone[1](cg))
        torch.testing.assert_close(trainer.classifier(aa), mean_aa)
    accuracy = 0.5 * float((mean_aa > 0).double().mean() + (mean_cg <= 0).double().mean())
    assert row["classifier_accuracy"] == pytest.approx(accuracy)


class _ScaledDisplacementLogit(_DisplacementLogit):
    """``scale`` times the logit of :class:`_DisplacementLogit`."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.scale * super().forward(windows)


def test_the_friction_gradient_of_a_classifier_ensemble_is_the_mean_of_its_members(tmp_path):
    """Members whose rewards are 1 and 3 times the squared displacement: with the same runs (common random
    numbers, the same seed) the ensemble's crn gradient is twice that of the first alone."""
    starts = np.zeros((64, 2, 3))
    starts[:, 1, 0] = TRUE_R0
    single = _free_trainer(tmp_path / "one", 64, 50.0, 0.01, 10)
    ensemble = _free_trainer(tmp_path / "two", 64, 50.0, 0.01, 10, classifier=ClassifierEnsemble(
        [_ScaledDisplacementLogit(1.0), _ScaledDisplacementLogit(3.0)]))
    alone, _ = single.friction_crn_gradient(starts, 20)
    both, _ = ensemble.friction_crn_gradient(starts, 20)
    assert float(alone[0]) < 0
    assert float(both[0]) == pytest.approx(2.0 * float(alone[0]), rel=1e-6)


def test_generator_state_is_a_copy_and_load_averaged_loads_a_given_state(tmp_path):
    trainer = _free_trainer(tmp_path, 8, 50.0, 0.01, 10)
    state = trainer.generator_state()
    before = trainer.dynamics.log_friction.detach().clone()
    state["dynamics.log_friction"] += 0.5
    assert torch.equal(trainer.dynamics.log_friction.detach(), before)  # changing the copy changes nothing
    trainer.load_averaged(state)
    assert torch.equal(trainer.dynamics.log_friction.detach(), before + 0.5)


def test_the_friction_steps_are_adam_with_its_own_short_memory_of_the_squared_gradient(tmp_path):
    """Several iterations: each step of log friction is Adam's written out again from the logged crn gradients,
    with ``beta1`` and ``friction_beta2`` (not the network's 0.999), so a gradient that shrinks after large ones
    still moves the friction by about ``lr_friction``."""
    lr, beta1, beta2 = 0.05, 0.5, 0.9
    trainer = _free_trainer(tmp_path, 64, 50.0, 0.01, 10, classifier_warmup=0, lr_friction=lr,
                            decay_last_fraction=0.0, beta1=beta1, friction_beta2=beta2)
    m = v = 0.0
    for t in range(1, 5):
        before = float(trainer.dynamics.log_friction.detach()[0])
        g = trainer.step()["friction_crn_gradient"]
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
        expected = -lr * (m / (1 - beta1 ** t)) / (math.sqrt(v / (1 - beta2 ** t)) + 1e-8)
        step = float(trainer.dynamics.log_friction.detach()[0]) - before
        assert step == pytest.approx(expected, rel=1e-5, abs=1e-9), f"iteration {t}"


@pytest.mark.parametrize("lr_potential", [0.0, 0.01])
def test_zero_potential_rate_leaves_the_potential_as_pre_training_left_it(tmp_path, lr_potential):
    potential = HarmonicDimer(TRUE_K, TRUE_R0)
    trainer = _free_trainer(tmp_path, 32, 50.0, 0.01, 10, potential=potential, classifier_warmup=0,
                            lr_potential=lr_potential, lr_friction=0.05)
    before = {k: v.clone() for k, v in potential.state_dict().items()}
    friction_before = float(trainer.dynamics.log_friction.detach()[0])
    trainer.step()
    unchanged = all(torch.equal(before[k], v) for k, v in potential.state_dict().items())
    assert unchanged == (lr_potential == 0)
    assert float(trainer.dynamics.log_friction.detach()[0]) != friction_before


def test_evidence_scaling_shrinks_the_potential_step_by_the_logged_factor_and_leaves_the_friction_step(tmp_path):
    """Same seed, same paths: with train.evidence_scaling the potential's first (Adam) step is the plain run's
    times the logged step_scale, while the friction's step (its crn gradient) is the same in both runs."""
    moves, rows = [], []
    for evidence in (False, True):
        potential = HarmonicDimer(TRUE_K, TRUE_R0)
        trainer = _free_trainer(tmp_path / str(evidence), 32, 50.0, 0.01, 10, potential=potential,
                                classifier_warmup=0, lr_potential=0.01, lr_friction=0.05,
                                evidence_scaling=evidence)
        before = {k: v.clone() for k, v in potential.state_dict().items()}
        friction_before = trainer.dynamics.log_friction.detach().clone()
        rows.append(trainer.step())
        moves.append((torch.stack([potential.state_dict()[k] - before[k] for k in before]),
                      trainer.dynamics.log_friction.detach() - friction_before))
    (plain, plain_friction), (scaled, scaled_friction) = moves
    scale = rows[1]["step_scale"]
    assert rows[0]["step_scale"] == 1.0 and 0.0 < scale < 1.0
    assert plain.abs().min() > 0
    torch.testing.assert_close(scaled, scale * plain, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(scaled_friction, plain_friction, rtol=1e-9, atol=0)


def test_friction_first_moves_only_the_friction_then_both(tmp_path):
    """``friction_first = 2``: after the classifier warm-up, two iterations step the friction by Adam's first step
    (``lr_friction``, the reward falls as the friction rises) while the potential stays bit for bit; the third
    iteration moves the potential too. The phases are logged."""
    potential = HarmonicDimer(TRUE_K, TRUE_R0)
    trainer = _free_trainer(tmp_path, 64, 50.0, 0.01, 10, potential=potential, classifier_warmup=1,
                            friction_first=2, lr_potential=0.01, lr_friction=0.05, decay_last_fraction=0.0)
    before = {k: v.clone() for k, v in potential.state_dict().items()}
    phases, log_friction = [], [float(trainer.dynamics.log_friction.detach()[0])]
    for _ in range(4):
        phases.append(trainer.step()["phase"])
        log_friction.append(float(trainer.dynamics.log_friction.detach()[0]))
        if len(phases) == 3:
            assert all(torch.equal(before[k], v) for k, v in potential.state_dict().items())
    assert phases == ["warmup", "friction", "friction", "adversarial"]
    assert log_friction[1] == log_friction[0]
    assert log_friction[2] - log_friction[1] == pytest.approx(0.05, rel=1e-4)
    assert log_friction[3] != log_friction[2]
    assert not all(torch.equal(before[k], v) for k, v in potential.state_dict().items())


class _AffineDisplacementLogit(torch.nn.Module):
    """Logit ``-a |x_T - x_0|^2 + b`` of bead 0: two parameters that the classifier loss moves."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Parameter(torch.tensor(1.0)), torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return -self.a * ((windows[:, -1, 0] - windows[:, 0, 0]) ** 2).sum(-1) * 1e2 + self.b


def test_classifier_reset_starts_it_afresh_while_the_generator_waits(tmp_path):
    """``classifier_reset_every = 2``, ``classifier_reset_warmup = 1`` after one warm-up iteration: two generator
    iterations, then one classifier-only iteration that starts from the classifier's initial parameters with a
    fresh Adam state (one classifier step moves every parameter by Adam's first step, ``lr_classifier`` times the
    gradient's sign) and an empty replay; the friction holds and the schedules do not advance there."""
    trainer = _free_trainer(tmp_path, 16, 50.0, 0.01, 10, classifier=_AffineDisplacementLogit(), classifier_warmup=1,
                            classifier_reset_every=2, classifier_reset_warmup=1, classifier_steps=1,
                            classifier_replay=2, lr_classifier=0.01, lr_friction=0.05, decay_last_fraction=0.0)
    initial = {k: v.clone() for k, v in trainer.classifier.state_dict().items()}
    phases, log_friction = [], [float(trainer.dynamics.log_friction.detach()[0])]
    for it in range(7):
        phases.append(trainer.step()["phase"])
        log_friction.append(float(trainer.dynamics.log_friction.detach()[0]))
        moved = {k: (v - initial[k]).abs() for k, v in trainer.classifier.state_dict().items()}
        one_first_step = all(torch.allclose(m, torch.full_like(m, 0.01), rtol=1e-4) for m in moved.values())
        assert one_first_step == (it in (0, 3, 6)), it
        assert len(trainer.replay) == (1 if it in (0, 3, 6) else 2)
    assert phases == ["warmup", "adversarial", "adversarial", "warmup", "adversarial", "adversarial", "warmup"]
    assert [log_friction[k + 1] == log_friction[k] for k in range(7)] == [True, False, False, True, False, False,
                                                                          True]
    assert trainer.scheduler.last_epoch == 4


class _RandomDisplacementLogit(torch.nn.Module):
    """A logit with randomly drawn weights on the displacement of bead 0 (a classifier with an initialisation)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return ((windows[:, -1, 0] - windows[:, 0, 0]) * self.w).sum(-1) * 1e2


def test_classifier_reset_init_new_draws_each_re_initialisation_from_a_seed_of_its_iteration(tmp_path):
    """``classifier_reset_init: new``: a re-initialisation loads what the factory builds under the torch seed of
    the iteration's stream 4 (written out again here), so two re-initialisations differ from each other and from
    the first classifier, a repeated one is identical, and the global random state is left as it was; ``same``
    returns to the first classifier; ``new`` without a factory is refused."""
    options = dict(classifier_warmup=1, classifier_reset_every=2, classifier_reset_warmup=1)
    torch.manual_seed(0)
    trainer = _free_trainer(tmp_path, 16, 50.0, 0.01, 10, classifier=_RandomDisplacementLogit(),
                            classifier_factory=_RandomDisplacementLogit, classifier_reset_init="new", **options)
    first = trainer.classifier.w.detach().clone()
    state = torch.get_rng_state()
    drawn = {}
    for iteration in (3, 6, 3):
        trainer.reset_classifier(iteration)
        torch.manual_seed(int(np.random.default_rng([trainer.train_cfg.seed, iteration, 4]).integers(2**31)))
        assert torch.equal(trainer.classifier.w.detach(), torch.randn(3)), iteration
        drawn.setdefault(iteration, trainer.classifier.w.detach().clone())
        assert torch.equal(drawn[iteration], trainer.classifier.w.detach())
        torch.set_rng_state(state)
    trainer.reset_classifier(9)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(drawn[3], drawn[6]) and not torch.equal(drawn[3], first)
    trainer.train_cfg.classifier_reset_init = "same"
    trainer.reset_classifier(3)
    assert torch.equal(trainer.classifier.w.detach(), first)
    with pytest.raises(ValueError, match="classifier_factory"):
        _free_trainer(tmp_path, 16, 50.0, 0.01, 10, classifier_reset_init="new", **options)


def test_the_decay_schedule_counts_generator_updates_not_classifier_only_iterations(tmp_path):
    """With one warm-up iteration and a re-initialisation after every two generator iterations (one
    classifier-only iteration each), 8 iterations hold 5 generator updates (iterations 1, 2, 4, 5, 7); with
    ``decay_last_fraction`` 0.6 the sgd friction's rate falls linearly from the third update (round(5 * 0.4) = 2
    updates before it) to 0 after the fifth: factors 1, 1, 1, 2/3, 1/3. Each step is ``-lr * factor * g``."""
    lr = 0.2
    trainer = _free_trainer(tmp_path, 16, 50.0, 0.01, 10, classifier_warmup=1, classifier_reset_every=2,
                            classifier_reset_warmup=1, classifier_steps=1, friction_optimizer="sgd",
                            lr_friction=lr, iterations=8, decay_last_fraction=0.6)
    assert trainer.generator_updates_before(8) == 5
    factors = iter((1.0, 1.0, 1.0, 2 / 3, 1 / 3))
    for it in range(8):
        before = float(trainer.dynamics.log_friction.detach()[0])
        row = trainer.step()
        step = float(trainer.dynamics.log_friction.detach()[0]) - before
        if it in (0, 3, 6):
            assert row["phase"] == "warmup" and step == 0.0
            continue
        assert step == pytest.approx(-lr * next(factors) * row["friction_crn_gradient"], rel=1e-9, abs=1e-12), it
    assert next(factors, None) is None


def test_friction_then_frozen_keeps_the_mean_of_the_phase_end_while_the_potential_learns(tmp_path):
    """``friction_then: frozen``: after four friction-only iterations the friction is set to the mean of its log
    over the phase's last half (``average_last_fraction`` 0.5 of 4 iterations: the last two), stays there bit for
    bit while the potential moves, and no crn runs are made; a resumed trainer carries the phase's trace."""
    options = dict(classifier_warmup=1, friction_first=4, friction_then="frozen", lr_potential=0.01,
                   lr_friction=0.05, iterations=10, average_last_fraction=0.5, decay_last_fraction=0.0)
    potential = HarmonicDimer(TRUE_K, TRUE_R0)
    trainer = _free_trainer(tmp_path, 64, 50.0, 0.01, 10, potential=potential, **options)
    rows, log_friction = [], []
    for _ in range(5):
        rows.append(trainer.step())
        log_friction.append(float(trainer.dynamics.log_friction.detach()[0]))
    assert [row["phase"] for row in rows] == ["warmup"] + ["friction"] * 4
    assert len(set(log_friction[1:])) == 4  # Adam moved it every friction iteration
    state = trainer.state_dict()
    before = {k: v.clone() for k, v in potential.state_dict().items()}
    frozen = (log_friction[3] + log_friction[4]) / 2
    for _ in range(2):
        row = trainer.step()
        assert row["phase"] == "potential" and "friction_crn_gradient" not in row
        assert float(trainer.dynamics.log_friction.detach()[0]) == pytest.approx(frozen, rel=1e-12)
    assert not all(torch.equal(before[k], v) for k, v in potential.state_dict().items())
    again = _free_trainer(tmp_path, 64, 50.0, 0.01, 10, potential=HarmonicDimer(TRUE_K, TRUE_R0), **options)
    again.load_state_dict(state)
    again.step()
    assert float(again.dynamics.log_friction.detach()[0]) == pytest.approx(frozen, rel=1e-12)


def test_frozen_friction_anneals_within_its_phase_and_the_potential_keeps_the_run_schedule(tmp_path):
    """``friction_then: frozen`` with sgd: the friction's rate decays over the last ``decay_last_fraction`` of the
    friction phase (4 updates, fraction 0.5: factors 1, 1, 1, 0.5), each step is ``-lr * factor * g`` with the
    logged crn gradient, while the potential's rate follows the whole run's schedule (still 1 at the freeze)."""
    lr = 0.2
    trainer = _free_trainer(tmp_path, 64, 50.0, 0.01, 10, potential=HarmonicDimer(TRUE_K, TRUE_R0),
                            classifier_warmup=1, friction_first=4, friction_then="frozen", friction_optimizer="sgd",
                            lr_friction=lr, lr_potential=0.01, iterations=10, average_last_fraction=0.5,
                            decay_last_fraction=0.5)
    trainer.step()  # warm-up
    for factor in (1.0, 1.0, 1.0, 0.5):
        before = float(trainer.dynamics.log_friction.detach()[0])
        g = trainer.step()["friction_crn_gradient"]
        step = float(trainer.dynamics.log_friction.detach()[0]) - before
        assert step == pytest.approx(-lr * factor * g, rel=1e-9, abs=1e-12)
    assert trainer.scheduler.get_last_lr() == [0.01]


@pytest.mark.parametrize("options, message", [
    ({"friction_first": 0}, "friction_then is 'frozen'.*friction_first 0"),
    ({"friction_first": 50, "iterations": 100, "average_last_fraction": 0.6}, "must start after the friction phase"),
])
def test_frozen_friction_without_a_phase_to_freeze_from_is_refused(tmp_path, options, message):
    config = Config(train=TrainConfig(friction_then="frozen", classifier_warmup=10, **options))
    with pytest.raises(ValueError, match=message):
        DynamicMatchingTrainer(config, HarmonicDimer(TRUE_K, TRUE_R0), _DisplacementLogit(),
                               DynamicsParameters("langevin", 5.0, [0, 0]), None,
                               np.zeros((2, 3, 2, 3)), [MASS_AMU] * 2, TEMPERATURE_K, 10, tmp_path)


@pytest.mark.parametrize("friction_first", [0, 3])
def test_sgd_friction_steps_are_the_rate_times_the_crn_gradient(tmp_path, friction_first):
    """``friction_optimizer: sgd``: every step of log friction is ``-lr_friction * factor * g`` with ``g`` the
    logged crn gradient and ``factor`` the decay schedule's (1, then falling linearly over the last third), in the
    friction-only phase and with the potential learning; a resumed trainer holds the same optimiser state."""
    lr, iterations = 0.2, 6
    potential = HarmonicDimer(TRUE_K, TRUE_R0)
    trainer = _free_trainer(tmp_path, 64, 50.0, 0.01, 10, potential=potential, classifier_warmup=0,
                            friction_first=friction_first, lr_friction=lr, friction_optimizer="sgd",
                            lr_potential=0.01, iterations=iterations, decay_last_fraction=0.5)
    decay_start, span = 3, 3
    for it in range(iterations):
        before = float(trainer.dynamics.log_friction.detach()[0])
        g = trainer.step()["friction_crn_gradient"]
        factor = 1.0 if it < decay_start else max(1.0 - (it - decay_start) / span, 0.02)
        step = float(trainer.dynamics.log_friction.detach()[0]) - before
        assert step == pytest.approx(-lr * factor * g, rel=1e-9, abs=1e-12), f"iteration {it}"
    state = trainer.state_dict()
    assert state["friction_scheduler"]["last_epoch"] == iterations
    again = _free_trainer(tmp_path, 64, 50.0, 0.01, 10, potential=HarmonicDimer(TRUE_K, TRUE_R0),
                          classifier_warmup=0, friction_first=friction_first, lr_friction=lr,
                          friction_optimizer="sgd", lr_potential=0.01, iterations=iterations, decay_last_fraction=0.5)
    again.load_state_dict(state)
    assert again.friction_scheduler.get_last_lr() == trainer.friction_scheduler.get_last_lr()


@pytest.mark.parametrize("option", [{"friction_first": 5}, {"friction_optimizer": "sgd"}])
def test_friction_options_without_a_crn_friction_are_refused(tmp_path, option):
    config = Config(train=TrainConfig(friction_gradient="score", **option))
    name, value = next(iter(option.items()))
    with pytest.raises(ValueError, match=f"train.{name} is {value!r}.*crn"):
        DynamicMatchingTrainer(config, HarmonicDimer(TRUE_K, TRUE_R0), _DisplacementLogit(),
                               DynamicsParameters("langevin", 5.0, [0, 0]), None,
                               np.zeros((2, 3, 2, 3)), [MASS_AMU] * 2, TEMPERATURE_K, 10, tmp_path)


def test_a_run_with_nothing_to_learn_is_refused(tmp_path):
    config = Config(train=TrainConfig(lr_potential=0.0), dynamics=DynamicsConfig(learn_friction=False))
    with pytest.raises(ValueError, match="nothing to learn"):
        DynamicMatchingTrainer(config, HarmonicDimer(TRUE_K, TRUE_R0), _DisplacementLogit(),
                               DynamicsParameters("langevin", 5.0, [0, 0], learnable=False), None,
                               np.zeros((2, 3, 2, 3)), [MASS_AMU] * 2, TEMPERATURE_K, 10, tmp_path)


# ------------------------------------------------------------------------------ recovery of a known model
def _trainer(tmp_path, integrator, iterations, walkers=256, seed=0, **train):
    friction, dt = SETTINGS[integrator]
    steps_per_frame, window_frames = 10, 6
    tmp_path.mkdir(parents=True, exist_ok=True)
    data_file, frames = simulate_dimer_data(tmp_path, integrator, TRUE_K, TRUE_R0, friction, dt,
                                            steps_per_frame * dt, n_walkers=64, n_frames=400, seed=3)
    windows = np.concatenate([make_windows(f, window_frames) for f in frames])
    config = Config(
        train=TrainConfig(iterations=iterations, walkers=walkers, classifier_warmup=30, lr_potential=0.004,
                          lr_friction=0.01, checkpoint_every=10**6, snr_every=0, seed=seed, **train),
        dynamics=DynamicsConfig(integrator=integrator, timestep_ps=dt, friction_per_ps=3 * friction))
    potential = HarmonicDimer(0.3 * TRUE_K, 1.1 * TRUE_R0)
    dynamics = DynamicsParameters(integrator, 3 * friction, [0, 0])
    torch.manual_seed(seed)

    def new_classifier():
        classifier = InvariantWindowClassifier(2, window_frames, hidden=32)
        classifier.fit_scales(torch.as_tensor(windows[:2000]))
        return classifier

    sampler = OpenMMSampler(dimer_metadata(integrator, friction, dt), walkers)
    trainer = DynamicMatchingTrainer(config, potential, new_classifier(), dynamics, sampler, windows, [MASS_AMU] * 2,
                                     TEMPERATURE_K, steps_per_frame, tmp_path / "run", new_classifier)
    return trainer, frames


@pytest.mark.integration
@pytest.mark.parametrize("integrator", ["brownian", "langevin"])
def test_dynamic_matching_recovers_force_constant_and_friction_where_force_matching_cannot(tmp_path, integrator):
    friction_true = SETTINGS[integrator][0]
    trainer, frames = _trainer(tmp_path, integrator, iterations=500)
    trainer.run(progress=False)
    trainer.load_averaged()
    k = math.exp(float(trainer.potential.log_k.detach()))
    friction = float(trainer.dynamics.friction_per_bead()[0].detach())
    assert abs(k / TRUE_K - 1) < 0.10, f"k = {k:.1f}, true {TRUE_K}"
    assert abs(float(trainer.potential.r0.detach()) / TRUE_R0 - 1) < 0.05
    assert abs(friction / friction_true - 1) < 0.10, f"friction = {friction:.2f}, true {friction_true}"

    # force matching on the same data recovers k and r0 (it has no friction to learn: its dynamics stay where
    # the configuration puts them, 3x the truth here, which dynamic matching corrected above)
    fm = HarmonicDimer(0.3 * TRUE_K, 1.1 * TRUE_R0)
    flat = frames.reshape(-1, 2, 3)
    from dimer_toy import dimer_forces

    train_force_matching(fm, flat, dimer_forces(flat, TRUE_K, TRUE_R0), iterations=400, lr=0.02, batch_size=256,
                         seed=0, progress=False)
    assert abs(math.exp(float(fm.log_k.detach())) / TRUE_K - 1) < 0.02
    assert abs(float(fm.r0.detach()) / TRUE_R0 - 1) < 0.01


@pytest.mark.integration
@pytest.mark.parametrize("replay, reset, init", [(1, 0, "same"), (3, 0, "same"), (1, 2, "same"), (1, 2, "new")])
def test_resume_continues_exactly(tmp_path, replay, reset, init):
    """Also with the classifier training on earlier batches again (they travel in the checkpoint), and with the
    classifier re-initialised after the checkpoint (to the initial state the checkpoint carries, not to the one
    a resumed trainer happens to construct: perturbed here; or to a new draw seeded by the iteration)."""
    options = dict(iterations=8, walkers=32, classifier_replay=replay, classifier_reset_every=reset,
                   classifier_reset_warmup=1, classifier_reset_init=init)
    uninterrupted, _ = _trainer(tmp_path / "a", "brownian", **options)
    uninterrupted.config.train.classifier_warmup = 2
    uninterrupted.run(progress=False)

    first, _ = _trainer(tmp_path / "b", "brownian", **options)
    first.config.train.classifier_warmup = 2
    for _ in range(5):
        first.step()
    first.save_checkpoint()
    first.step()  # work after the checkpoint is lost on interruption
    resumed, _ = _trainer(tmp_path / "b", "brownian", **options)
    resumed.config.train.classifier_warmup = 2
    resumed.classifier_initial = {k: v + 0.1 for k, v in resumed.classifier_initial.items()}
    resumed.load_state_dict(torch.load(tmp_path / "b" / "run" / "checkpoint.pt", weights_only=False))
    assert resumed.iteration == 5
    resumed.run(progress=False)
    for name, value in uninterrupted.potential.state_dict().items():
        assert torch.equal(value, resumed.potential.state_dict()[name]), name
    assert torch.equal(uninterrupted.dynamics.log_friction, resumed.dynamics.log_friction)
    for name, value in uninterrupted.classifier.state_dict().items():
        assert torch.equal(value, resumed.classifier.state_dict()[name]), name


@pytest.mark.integration
@pytest.mark.parametrize("mode, chunk, reuse", [("conditional", 8, 1), ("conditional", 5, 3), ("free", 7, 2)])
def test_chunked_estimator_gives_the_unchunked_updates_and_snr(tmp_path, mode, chunk, reuse):
    runs = {}
    for label, estimator_chunk in (("whole", 0), ("chunked", chunk)):
        trainer, _ = _trainer(tmp_path / label, "langevin", iterations=4, walkers=32)
        cfg = trainer.config.train
        cfg.classifier_warmup, cfg.snr_every, cfg.max_reuse, cfg.ess_threshold = 1, 1, reuse, 1e-6
        cfg.mode, cfg.estimator_chunk = mode, estimator_chunk
        runs[label] = (trainer, [trainer.step() for _ in range(4)])
    (whole, whole_rows), (chunked, chunked_rows) = runs["whole"], runs["chunked"]
    for name, value in whole.potential.state_dict().items():
        torch.testing.assert_close(chunked.potential.state_dict()[name], value, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(chunked.dynamics.log_friction, whole.dynamics.log_friction, rtol=1e-9, atol=1e-12)
    updates = [[r.get("updates", 0) for r in rows] for rows in (whole_rows, chunked_rows)]
    assert updates[0] == updates[1] == [0] + [reuse] * 3
    if 32 % chunk == 0 and 32 // chunk == 4:  # one SNR group per chunk = the unchunked estimator's 4 groups
        for a, b in zip(whole_rows[1:], chunked_rows[1:]):
            assert b["gradient_snr"] == pytest.approx(a["gradient_snr"], rel=1e-8)


@pytest.mark.integration
def test_conditional_then_free_schedule_starts_free_windows_from_persistent_cg_walkers(tmp_path):
    trainer, _ = _trainer(tmp_path, "brownian", iterations=6, walkers=32)
    trainer.config.train.mode = "conditional_then_free"
    trainer.config.train.switch_to_free_at = 3
    trainer.config.train.classifier_warmup = 1
    rows = [trainer.step() for _ in range(6)]
    assert [row["mode"] for row in rows] == ["conditional"] * 3 + ["free"] * 3
    walkers = trainer.free_positions
    assert walkers.shape == (32, 2, 3) and np.isfinite(walkers).all()
    # persistent walkers equilibrate under the current model: their bond lengths stay in the Boltzmann range
    bond = np.linalg.norm(walkers[:, 1] - walkers[:, 0], axis=1)
    k_now = math.exp(float(trainer.potential.log_k.detach()))
    assert abs(bond.mean() - float(trainer.potential.r0.detach())) < 6 * math.sqrt(KT / k_now)
    assert all(math.isfinite(row["reward_mean"]) for row in rows[1:])


def test_several_walkers_per_start_share_their_start_frame_and_baseline_group(tmp_path):
    trainer, _ = _trainer(tmp_path, "brownian", iterations=3, walkers=32)
    cfg = trainer.config.train
    cfg.walkers_per_start, cfg.baseline, cfg.classifier_warmup = 4, "loo", 1
    paths, aa = trainer.sample(0, "conditional")
    starts = paths.positions[:, 0].reshape(8, 4, 2, 3)
    assert torch.equal(starts, starts[:, :1].expand_as(starts))
    torch.testing.assert_close(starts[:, 0], aa[::4, 0])
    assert not torch.equal(paths.positions[0, -1], paths.positions[1, -1])  # same start, own noise
    assert trainer.start_groups("conditional").tolist() == [g for g in range(8) for _ in range(4)]
    assert trainer.start_groups("free") is None
    rows = [trainer.step() for _ in range(3)]
    assert rows[-1]["updates"] == 1 and math.isfinite(rows[-1]["reward_mean"])

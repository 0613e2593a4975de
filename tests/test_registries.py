"""Kinds registered by a user (a potential net, a sampler, a classifier) are selectable from YAML and run through
the whole training pipeline; the sampler double integrates Brownian dynamics written out in numpy."""
import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from dimer_toy import simulate_dimer_data
from openmm_dynmatch.config import load_config
from openmm_dynmatch.models import registry
from openmm_dynmatch.models.potential import NETS, load_potential, register_net
from openmm_dynmatch.runs import run_training
from openmm_dynmatch.sampling import SAMPLERS, Advanced, Paths, PathSampler, register_sampler
from openmm_dynmatch.units import kt_kj_per_mol

K, R0, FRICTION, DT = 500.0, 0.3, 100.0, 0.02
pytestmark = pytest.mark.usefixtures("one_thread")


class SpringNet(nn.Module):
    """``k/2 (r - r0)^2`` summed over bonded pairs, with a learnable log-scale of ``k``."""

    r0: float

    def __init__(self, n_beads: int, bead_types=None, n_types=None, bonds=None, k: float = 10.0, r0: float = 0.3):
        super().__init__()
        pairs = torch.tensor(bonds if bonds else [[0, 1]], dtype=torch.long)
        self.register_buffer("pairs", pairs)
        self.log_k = nn.Parameter(torch.tensor(math.log(k)))
        self.r0 = float(r0)
        self.spec = {"kind": "spring", "n_beads": n_beads, "bonds": pairs.tolist(), "k": k, "r0": r0}

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        r = (positions[:, self.pairs[:, 1]] - positions[:, self.pairs[:, 0]]).pow(2).sum(-1).sqrt()
        return 0.5 * torch.exp(self.log_k) * ((r - self.r0) ** 2).sum(-1)


class NumpyBrownianSampler:
    """A sampler double: ``x += dt/(gamma m) F + sqrt(2 kT dt/(gamma m)) xi`` in numpy, forces from the potential."""

    instances = []

    def __init__(self, metadata, n_walkers, platform="Reference", workdir=None):
        self.metadata, self.n_walkers = dict(metadata), int(n_walkers)
        self.kt = kt_kj_per_mol(metadata["temperature_k"])
        NumpyBrownianSampler.instances.append(self)
        self.calls = 0

    def set_model(self, potential, dynamics):
        self.potential = potential
        self.gamma_m = dynamics.friction_per_bead().detach().numpy() * np.asarray(self.metadata["masses_amu"])

    def _step(self, x, rng):
        with torch.enable_grad():
            xt = torch.as_tensor(x).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.potential(xt).sum(), xt)
        dt, mobility = self.metadata["timestep_ps"], 1.0 / self.gamma_m[None, :, None]
        return x - dt * mobility * grad.numpy() + np.sqrt(2 * self.kt * dt * mobility) * rng.standard_normal(x.shape)

    def record(self, start_positions, n_steps, seed):
        self.calls += 1
        rng = np.random.default_rng(seed)
        path = [np.asarray(start_positions, dtype=np.float64)]
        for _ in range(n_steps):
            path.append(self._step(path[-1], rng))
        return Paths(torch.as_tensor(np.stack(path, axis=1)), torch.zeros(path[0].shape, dtype=torch.float64))

    def advance(self, positions, n_steps, seed):
        return Advanced(self.record(positions, n_steps, seed).positions[:, -1].numpy())


@pytest.fixture
def registered():
    register_net("spring", SpringNet)
    register_sampler("numpy_brownian", NumpyBrownianSampler)
    registry.register_classifier("tiny", TinyClassifier)
    yield
    del NETS["spring"], SAMPLERS["numpy_brownian"], registry.CLASSIFIERS["tiny"]


class TinyClassifier(nn.Module):
    """Logit from the bond length's mean and spread over a window."""

    def __init__(self, n_beads: int, window_frames: int, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 1))
        self.register_buffer("scale", torch.ones(()))

    def fit_scales(self, windows):
        self.scale.copy_((windows[:, :, 1] - windows[:, :, 0]).norm(dim=-1).std().to(self.scale.dtype))

    def forward(self, windows):
        r = (windows[:, :, 1] - windows[:, :, 0]).norm(dim=-1).float() / self.scale
        return self.net(torch.stack([r.mean(1), r.std(1)], dim=1)).squeeze(-1)


def test_kinds_registered_in_a_test_file_are_selectable_from_yaml_and_train(tmp_path, registered):
    folder = tmp_path / "data"
    folder.mkdir()
    simulate_dimer_data(folder, "brownian", K, R0, FRICTION, DT, 10 * DT, n_walkers=1, n_frames=300, seed=2)
    data_path = next(folder.glob("*.h5"))
    config = {"data": {"cg_path": str(data_path), "window_frames": 4, "n_blocks": 4},
              "potential": {"kind": "spring", "net": {"k": 50.0}, "dtype": "float64"},
              "classifier": {"kind": "tiny", "options": {"width": 4}},
              "dynamics": {"integrator": "brownian", "timestep_ps": DT, "friction_per_ps": 50.0},
              "train": {"sampler": "numpy_brownian", "walkers": 8, "iterations": 3, "classifier_warmup": 1,
                        "probe_windows": 0, "checkpoint_every": 10}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_config(path)
    assert (cfg.potential.kind, cfg.classifier.kind, cfg.train.sampler) == ("spring", "tiny", "numpy_brownian")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['kk'\] for SpringNet"):
        load_config(path, overrides=["potential.net={kk: 1.0}"])
    NumpyBrownianSampler.instances.clear()
    summary = run_training(cfg, tmp_path / "run", progress=False)
    sampler = NumpyBrownianSampler.instances[-1]
    # one recording per iteration, plus the friction's two common-random-number runs in the 2 adversarial ones
    assert isinstance(sampler, PathSampler) and sampler.calls == 3 + 2 * 2
    potential, _ = load_potential(summary["potential"])
    assert isinstance(potential.net, SpringNet) and potential.net.spec["k"] == 50.0
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 4  # header + 3 iterations


def test_unknown_kinds_name_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown sampler 'x'; available: \['local'\]"):
        from openmm_dynmatch.sampling import sampler_class

        sampler_class("x")
    with pytest.raises(ValueError, match="unknown classifier kind 'x'; available: \\['equivariant', 'invariant'\\]"):
        registry.classifier_class("x")

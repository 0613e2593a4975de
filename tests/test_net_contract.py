"""The contract every potential network kind meets, run over every kind in the net registry.

A kind registered with ``register_net`` is a class taking ``n_beads, bead_types, n_types, bonds`` (plus its own
hyper-parameters) with a ``spec`` dict, mapping positions ``(n_walkers, n_beads, 3)`` nm to energies
``(n_walkers,)`` kJ/mol. Wrapped with a prior in :class:`CGPotential`, in float64, it must give:

- forces equal to minus central finite differences of the energy;
- energies invariant under a proper rotation plus a translation;
- walker independence: permuting walkers permutes the energies, and each walker's energy equals the energy of
  that walker alone;
- the same energies and forces after a TorchScript save/load round trip;
- the same total energy and forces in an OpenMM System of the exported model as in the model.

The checks are generic: a kind only has to be registered to be tested (``test_a_newly_registered_kind_...``
shows this with a kind defined here). Kinds are read from ``NETS`` at collection time.
"""
import inspect

import numpy as np
import pytest
import torch

import openmm
from conftest import available_platforms, tolerance
from openmm_dynmatch.models.potential import NETS, CGPotential, build_net, forces, net_class, register_net
from openmm_dynmatch.models.prior import fit_prior
from openmm_dynmatch.openmm.cg_walkers import create_system
from openmm_dynmatch.openmm.export import export

N_BEADS = 5
BONDS = [[0, 1], [1, 2], [2, 3], [3, 4]]
TYPES = [0, 1, 1, 1, 0]
N_TYPES = 2
# Small values for hyper-parameters a kind may take (applied only where the constructor has the argument and
# its default is larger), so that every case stays fast.
SMALL = {"hidden": 8, "n_layers": 2, "n_interactions": 2, "mul": 4, "radial_hidden": 8, "embedding_dim": 4,
         "n_basis": 6}
FD_STEP_NM = 1e-5


def registered_kinds() -> list:
    """Every net kind registered when this module is collected."""
    return sorted(NETS)


def small_hyperparameters(kind: str) -> dict:
    """Hyper-parameters of ``SMALL`` that the kind's constructor takes with a larger (or no) default."""
    parameters = inspect.signature(net_class(kind).__init__).parameters
    small = {}
    for name, value in SMALL.items():
        if name in parameters:
            default = parameters[name].default
            if default is inspect.Parameter.empty or (isinstance(default, int) and default > value):
                small[name] = value
    return small


def chain_frames(rng, n_frames: int) -> torch.Tensor:
    """Random-walk chains, float64, (n_frames, N_BEADS, 3) nm."""
    return torch.as_tensor(np.cumsum(rng.normal(scale=0.25, size=(n_frames, N_BEADS, 3)), axis=1))


def build_contract_potential(kind: str, rng) -> CGPotential:
    """Fitted prior + a small network of ``kind`` with perturbed (non-trivial) weights, float64."""
    frames = chain_frames(rng, 200)
    prior = fit_prior(frames.numpy(), BONDS, 300.0, repulsion_exclude_bonds=2)
    net = build_net({"kind": kind, "n_beads": N_BEADS, "bead_types": TYPES, "n_types": N_TYPES, "bonds": BONDS,
                     **small_hyperparameters(kind)})
    potential = CGPotential(prior, net, dtype="float64")
    if hasattr(potential.net, "fit_scales"):
        potential.net.fit_scales(frames)
    generator = torch.Generator().manual_seed(20261125)
    with torch.no_grad():  # so that a zero-initialised output layer does not make the checks vacuous
        for param in potential.net.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return potential


class ContractCase:
    """A kind's contract potential and, made on first use, its TorchScript version."""

    def __init__(self, potential: CGPotential):
        self.potential = potential
        self._scripted = None

    def scripted(self):
        if self._scripted is None:
            self._scripted = torch.jit.script(self.potential)
        return self._scripted


_CASES = {}


def contract_case(kind: str) -> ContractCase:
    """The case of ``kind``, built (and scripted) once per test session: scripting e3nn networks is slow, and no
    check modifies the potential."""
    key = (kind, net_class(kind))
    if key not in _CASES:
        _CASES[key] = ContractCase(build_contract_potential(kind, np.random.default_rng(20261125)))
    return _CASES[key]


def proper_rotation(rng) -> torch.Tensor:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return torch.as_tensor(q)


# --- the contract: each check takes (case, rng, tmp_path) ----------------------------------------------------

def check_net_is_not_trivial(case, rng, tmp_path):
    """With parameters, the network's energy varies between configurations (else the checks below are vacuous)."""
    potential = case.potential
    if not list(potential.net.parameters()):
        return
    x = chain_frames(rng, 4)
    with torch.no_grad():
        net_energies = potential.net(x)
    assert net_energies.shape == (4,)
    assert float(net_energies.max() - net_energies.min()) > 1e-6


def check_forces_equal_finite_differences(case, rng, tmp_path):
    potential = case.potential
    x = chain_frames(rng, 2)
    _, f = forces(potential, x)
    assert f.shape == x.shape and f.dtype == torch.float64
    scale = float(f.abs().max())
    for _ in range(6):
        index = tuple(int(rng.integers(n)) for n in x.shape)
        plus, minus = x.clone(), x.clone()
        plus[index] += FD_STEP_NM
        minus[index] -= FD_STEP_NM
        with torch.no_grad():
            numeric = -(potential(plus).sum() - potential(minus).sum()).item() / (2 * FD_STEP_NM)
        assert f[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-5 * scale), index


def check_energy_invariant_under_rigid_motion(case, rng, tmp_path):
    potential = case.potential
    x = chain_frames(rng, 3)
    moved = x @ proper_rotation(rng).T + torch.as_tensor(rng.normal(size=3))
    with torch.no_grad():
        energies = potential(x)
        torch.testing.assert_close(potential(moved), energies, rtol=1e-9, atol=1e-9 * float(energies.abs().max()))


def check_walkers_are_independent(case, rng, tmp_path):
    potential = case.potential
    x = chain_frames(rng, 4)
    perm = torch.as_tensor([2, 0, 3, 1])
    tol = tolerance(torch.float64)
    energies, f = forces(potential, x)
    permuted_energies, permuted_f = forces(potential, x[perm])
    torch.testing.assert_close(permuted_energies, energies[perm], **tol)
    torch.testing.assert_close(permuted_f, f[perm], **tol)
    for w in range(x.shape[0]):
        alone, f_alone = forces(potential, x[w:w + 1])
        torch.testing.assert_close(alone, energies[w:w + 1], **tol)
        torch.testing.assert_close(f_alone, f[w:w + 1], **tol)


def check_torchscript_round_trip(case, rng, tmp_path):
    potential = case.potential
    x = chain_frames(rng, 3)
    path = tmp_path / "scripted.pt"
    torch.jit.save(case.scripted(), str(path))
    loaded = torch.jit.load(str(path))
    energies, f = forces(potential, x)
    loaded_energies, loaded_f = forces(loaded, x)
    tol = tolerance(torch.float64)
    torch.testing.assert_close(loaded_energies, energies, **tol)
    torch.testing.assert_close(loaded_f, f, **tol)


def check_openmm_energy_equals_model(case, rng, tmp_path, platform="Reference"):
    """The exported model in an OpenMM System of walkers gives the model's energy and forces: to float64
    round-off on the Reference platform, to float32 accuracy on a GPU platform (in mixed precision, the package's
    default there)."""
    potential = case.potential
    metadata = {"n_beads": N_BEADS, "bead_names": [f"B{i}" for i in range(N_BEADS)], "bead_types": TYPES,
                "type_names": ["A", "B"], "masses_amu": [12.0] * N_BEADS, "temperature_k": 300.0,
                "integrator": "langevin", "friction_per_ps": 1.0, "timestep_ps": 0.002, "cutoff_nm": None,
                "periodic": False, "bonds": BONDS}
    path = export(case.scripted(), tmp_path / "model.pt", metadata)
    n_walkers = 3
    x = chain_frames(rng, n_walkers)
    cg = create_system(path, n_walkers, platform=platform)
    cg.context.setPositions(x.numpy().reshape(-1, 3))
    state = cg.context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    omm_forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    energies, f = forces(potential, x)
    rtol = 1e-9 if platform == "Reference" else tolerance(torch.float32)["rtol"]
    scale = float(energies.detach().abs().sum())
    np.testing.assert_allclose(energy, energies.sum().item(), rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(np.asarray(omm_forces).reshape(x.shape), f.numpy(), rtol=rtol,
                               atol=rtol * float(f.abs().max()))


CONTRACT = [check_net_is_not_trivial, check_forces_equal_finite_differences,
            check_energy_invariant_under_rigid_motion, check_walkers_are_independent, check_torchscript_round_trip,
            check_openmm_energy_equals_model]
# Building the OpenMM System loads the exported model several times: seconds for the e3nn network.
SLOW_CHECKS = (check_openmm_energy_equals_model,)
CHECKS = [pytest.param(check, id=check.__name__[len("check_"):],
                       marks=pytest.mark.integration if check in SLOW_CHECKS else ()) for check in CONTRACT]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("kind", registered_kinds())
def test_registered_kind_meets_the_contract(kind, check, rng, tmp_path):
    check(contract_case(kind), rng, tmp_path)


GPU_PLATFORMS = [name for name in ("CUDA", "OpenCL") if name in available_platforms()]


@pytest.mark.integration
@pytest.mark.parametrize("platform", GPU_PLATFORMS)  # none here: the parameter set is empty and pytest skips
@pytest.mark.parametrize("kind", registered_kinds())
def test_registered_kind_on_a_gpu_platform(kind, platform, rng, tmp_path):
    check_openmm_energy_equals_model(contract_case(kind), rng, tmp_path, platform)


# --- a kind registered by a user -----------------------------------------------------------------------------

class HarmonicPairs(torch.nn.Module):
    """``U = k/2 sum_{i<j} (r_ij - 0.4)^2`` over all bead pairs, with one learnable ``k``."""

    def __init__(self, n_beads: int, bead_types=None, n_types=None, bonds=None, k: float = 1.0):
        super().__init__()
        i, j = np.triu_indices(n_beads, 1)
        self.register_buffer("pairs", torch.as_tensor(np.stack([i, j])))
        self.k = torch.nn.Parameter(torch.tensor(float(k)))
        self.spec = {"kind": "contract_harmonic_pairs", "n_beads": int(n_beads),
                     "bead_types": list(bead_types) if bead_types is not None else [0] * n_beads,
                     "n_types": n_types, "bonds": [list(b) for b in (bonds or [])], "k": float(k)}

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        r = torch.linalg.norm(positions[:, self.pairs[1]] - positions[:, self.pairs[0]], dim=-1)
        return 0.5 * self.k * ((r - 0.4) ** 2).sum(-1)


@pytest.fixture
def harmonic_pairs_kind():
    kind = "contract_harmonic_pairs"
    assert kind not in NETS
    register_net(kind, HarmonicPairs)
    yield kind
    NETS.pop(kind, None)
    _CASES.pop((kind, HarmonicPairs), None)


@pytest.mark.parametrize("check", CHECKS)
def test_a_newly_registered_kind_meets_the_contract(harmonic_pairs_kind, check, rng, tmp_path):
    check(contract_case(harmonic_pairs_kind), rng, tmp_path)

"""Tests of the TorchScript export (DESIGN.md section 4) and the ``dynmatch export`` verb."""
import argparse
import json

import numpy as np
import pytest
import torch

from conftest import tolerance
from toys import HarmonicChain
from openmm_dynmatch.openmm.export import REQUIRED_KEYS, export, load_exported, load_metadata


class WrongShape(torch.nn.Module):
    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return positions.sum()


def chain_metadata(n_beads: int, **changes) -> dict:
    meta = {"n_beads": n_beads, "bead_names": [f"B{i}" for i in range(n_beads)], "bead_types": [0] * n_beads,
            "type_names": ["C"], "masses_amu": [12.0] * n_beads, "temperature_k": 300.0,
            "integrator": "langevin", "friction_per_ps": 1.0, "timestep_ps": 0.002, "cutoff_nm": None,
            "periodic": False, "bonds": [[i, i + 1] for i in range(n_beads - 1)]}
    meta.update(changes)
    return meta


def chain_energy_numpy(walkers: np.ndarray, k: float = 800.0, r0: float = 0.3) -> np.ndarray:
    """The chain's energy per walker, written out again in numpy."""
    r = np.linalg.norm(np.diff(walkers, axis=1), axis=-1)
    return 0.5 * k * ((r - r0) ** 2).sum(axis=1)


@pytest.fixture
def walkers(rng):
    base = np.stack([0.3 * np.arange(4), np.zeros(4), np.zeros(4)], axis=1)
    return base[None] + 0.05 * rng.standard_normal((6, 4, 3))


@pytest.mark.parametrize("model_dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("input_dtype", [torch.float64, torch.float32])
def test_exported_energy_is_sum_over_walkers(tmp_path, walkers, model_dtype, input_dtype):
    path = export(HarmonicChain(dtype=model_dtype), tmp_path / "m.pt", chain_metadata(4))
    module = load_exported(path)
    flat = torch.tensor(walkers.reshape(-1, 3), dtype=input_dtype, requires_grad=True)
    energy = module(flat)
    assert energy.dim() == 0 and energy.dtype == input_dtype
    expected = chain_energy_numpy(walkers).sum()
    tol = tolerance(torch.float32 if torch.float32 in (model_dtype, input_dtype) else torch.float64)
    np.testing.assert_allclose(energy.item(), expected, rtol=tol["rtol"], atol=tol["atol"])
    (grad,) = torch.autograd.grad(energy, flat)
    assert grad.dtype == input_dtype
    np.testing.assert_allclose(module.walker_energies(flat.detach()).numpy(), chain_energy_numpy(walkers),
                               rtol=tol["rtol"], atol=tol["atol"])


def test_exported_forces_match_finite_differences(tmp_path, walkers):
    module = load_exported(export(HarmonicChain(), tmp_path / "m.pt", chain_metadata(4)))
    flat = torch.tensor(walkers.reshape(-1, 3), requires_grad=True)
    (grad,) = torch.autograd.grad(module(flat), flat)
    h = 1e-6
    numeric = np.zeros(flat.shape)
    for index in np.ndindex(*flat.shape):
        plus, minus = walkers.reshape(-1, 3).copy(), walkers.reshape(-1, 3).copy()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (chain_energy_numpy(plus.reshape(walkers.shape)).sum()
                          - chain_energy_numpy(minus.reshape(walkers.shape)).sum()) / (2 * h)
    np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-6, atol=1e-5)


def test_reload_gives_identical_outputs_and_metadata(tmp_path, walkers):
    meta = chain_metadata(4, integrator="brownian", friction_per_ps=5.0, extra_note="kept")
    path = export(torch.jit.script(HarmonicChain()), tmp_path / "m.pt", meta)
    first, second = load_exported(path), load_exported(path)
    flat = torch.tensor(walkers.reshape(-1, 3))
    assert torch.equal(first(flat), second(flat))
    reloaded = load_metadata(path)
    assert reloaded == dict(meta, format_version=1)
    # The metadata travels in the TorchScript archive and is readable with torch alone.
    extra = {"dynmatch.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["dynmatch.json"])["friction_per_ps"] == 5.0


def test_one_file_serves_any_number_of_walkers(tmp_path, walkers):
    module = load_exported(export(HarmonicChain(), tmp_path / "m.pt", chain_metadata(4)))
    for n in (1, 2, 6):
        value = module(torch.tensor(walkers[:n].reshape(-1, 3))).item()
        np.testing.assert_allclose(value, chain_energy_numpy(walkers[:n]).sum(), rtol=1e-12)


@pytest.mark.parametrize("changes, message", [
    ({"integrator": "verlet"}, "unknown integrator 'verlet'"),
    ({"masses_amu": [12.0] * 3}, "masses_amu must be a list of n_beads=4"),
    ({"periodic": True}, "periodic CG models are not supported"),
    ({"bonds": [[0, 4]]}, "bonds must be pairs"),
    ({"timestep_ps": -0.002}, "timestep_ps must be a finite positive number"),
    ({"bead_types": [0, 0, 1, 0]}, "bead_types must be integers in"),
    ({"format_version": 2}, "format_version must be 1"),
    ({"masses_amu": np.full(4, 12.0)}, "JSON-serialisable"),
])
def test_bad_metadata_is_rejected(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        export(HarmonicChain(), tmp_path / "m.pt", chain_metadata(4, **changes))
    assert not (tmp_path / "m.pt").exists()


def test_missing_metadata_keys_are_named(tmp_path):
    meta = chain_metadata(4)
    del meta["cutoff_nm"], meta["bonds"]
    with pytest.raises(ValueError, match=r"lacks required keys \['cutoff_nm', 'bonds'\]"):
        export(HarmonicChain(), tmp_path / "m.pt", meta)
    assert set(REQUIRED_KEYS) >= {"cutoff_nm", "bonds"}


def test_bad_models_and_files_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"energies of shape \(n_walkers,\) = \(2,\), got \(\)"):
        export(WrongShape(), tmp_path / "m.pt", chain_metadata(4))
    with pytest.raises(ValueError, match="must be a torch.nn.Module"):
        export(lambda x: x, tmp_path / "m.pt", chain_metadata(4))
    with pytest.raises(FileNotFoundError, match="exported model not found"):
        load_metadata(tmp_path / "absent.pt")
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(HarmonicChain()), str(plain))
    with pytest.raises(ValueError, match="without dynmatch metadata"):
        load_exported(plain)
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        load_metadata(tmp_path / "text.pt")



def test_a_flipped_byte_in_a_model_file_is_refused_not_loaded(tmp_path, walkers):
    """torch.jit.load does not check the zip checksums: a flipped byte in a stored tensor used to load as other
    weights without an error (and a damaged debug table aborted the process inside openmm-torch)."""
    import zipfile

    path = export(HarmonicChain(), tmp_path / "model.pt", chain_metadata(4))
    with zipfile.ZipFile(path) as archive:
        tensor = next(info for info in archive.infolist() if "/data/" in info.filename and info.file_size >= 8)
    data = bytearray(path.read_bytes())
    header = tensor.header_offset  # local header: 30 bytes, then the name and the extra field, then the data
    start = header + 30 + sum(int.from_bytes(data[header + k:header + k + 2], "little") for k in (26, 28))
    data[start + 6] ^= 0x40  # the exponent byte of the first float64 parameter
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    for load in (load_metadata, load_exported):
        with pytest.raises(ValueError, match=rf"damaged\.pt is damaged: its member .*{tensor.filename.split('/')[-1]} "
                                             rf"fails its checksum .*export the model again"):
            load(damaged)
    (tmp_path / "cut.pt").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match=r"cut\.pt is not a TorchScript file \(not a readable zip archive"):
        load_metadata(tmp_path / "cut.pt")

def test_cli_export_reads_a_run_directory(tmp_path, walkers, monkeypatch):
    """``dynmatch export --run RUN --out model.pt`` goes through ``models.load_potential`` (contract 5)."""
    import openmm_dynmatch.models as models
    from openmm_dynmatch.cli import export as export_cli

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "potential.pt").write_bytes(b"stand-in")
    meta = chain_metadata(4)
    calls = []

    def load_potential(path):
        calls.append(str(path))
        return HarmonicChain(), dict(meta)

    monkeypatch.setattr(models, "load_potential", load_potential, raising=False)
    parser = argparse.ArgumentParser()
    export_cli.add_arguments(parser)
    out = tmp_path / "model.pt"
    assert export_cli.run(parser.parse_args(["--run", str(run_dir), "--out", str(out)])) == 0
    assert calls == [str(run_dir / "potential.pt")]
    assert load_metadata(out) == dict(meta, format_version=1)
    np.testing.assert_allclose(load_exported(out)(torch.tensor(walkers.reshape(-1, 3))).item(),
                               chain_energy_numpy(walkers).sum(), rtol=1e-12)
    with pytest.raises(FileNotFoundError, match="potential.pt"):
        export_cli.run(parser.parse_args(["--run", str(tmp_path / "nothing"), "--out", str(out)]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_package_potential_exports_and_runs_in_openmm(tmp_path, rng, dtype):
    """The trainer's potential file -> ``dynmatch export`` -> OpenMM gives the potential's energies and forces."""
    import openmm
    from openmm_dynmatch.cli import export as export_cli
    from openmm_dynmatch.models import build_potential, save_potential
    from openmm_dynmatch.openmm.cg_walkers import create_system

    bonds = [[0, 1], [1, 2], [2, 3]]
    potential = build_potential({"n_beads": 4, "bonds": bonds, "dtype": dtype,
                                 "prior": {"bonds": bonds, "bond_r0_nm": 0.38, "bond_k": 1000.0}})
    run_dir = tmp_path / "run"
    save_potential(run_dir / "potential.pt", potential, chain_metadata(4))
    parser = argparse.ArgumentParser()
    export_cli.add_arguments(parser)
    out = tmp_path / "model.pt"
    assert export_cli.run(parser.parse_args(["--run", str(run_dir), "--out", str(out)])) == 0
    walkers = np.stack([0.36 * np.arange(4), 0.1 * (np.arange(4) % 2), np.zeros(4)], 1)[None] \
        + 0.03 * rng.standard_normal((3, 4, 3))
    positions = torch.tensor(walkers, requires_grad=True)
    energy = potential(positions).sum()
    (grad,) = torch.autograd.grad(energy, positions)
    cg = create_system(out, 3, platform="Reference")
    cg.context.setPositions(walkers.reshape(-1, 3))
    state = cg.context.getState(getEnergy=True, getForces=True)
    tol = tolerance(torch.float32 if dtype == "float32" else torch.float64)
    np.testing.assert_allclose(state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole),
                               energy.item(), **tol)
    forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    np.testing.assert_allclose(forces.reshape(walkers.shape), -grad.numpy(), **tol)

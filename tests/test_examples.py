"""The example configurations load, every `dynmatch` command in examples/README.md parses, and the plain-OpenMM
example script runs the dynamics the model was trained with."""
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from toys import HarmonicChain
from openmm_dynmatch.cli import build_parser
from openmm_dynmatch.config import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["alanine_dipeptide_implicit.yaml", "lj_dimer_solvent.yaml"])
def test_example_config_loads(name):
    config = load_config(EXAMPLES / name)
    assert config.data.cg_path and not Path(config.data.cg_path).is_absolute()
    assert config.train.objective == "dynamic_matching"
    steps = config.data.frame_step * 0.1 / config.dynamics.timestep_ps  # the README's frame interval, 0.1 ps
    assert abs(steps - round(steps)) < 1e-9, "window frames must be whole numbers of CG steps apart"


def test_readme_commands_parse():
    text = (EXAMPLES / "README.md").read_text().replace("\\\n", " ")
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("dynmatch ")]
    assert len(commands) >= 6
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert args.verb in re.split(r"\s+", command)[1]


# ------------------------------------------------------------------ the plain-OpenMM example script

def _load_example_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("openmm_script_example", EXAMPLES / "openmm_script.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("integrator, frictions", [("langevin", [5.0, 5.0, 5.0]), ("brownian", [2.0, 9.0, 4.0])])
def test_openmm_script_runs_the_dynamics_of_dynmatch_simulate(integrator, frictions, tmp_path):
    """The example's trajectory equals `dynmatch simulate`'s for the same start, seed and platform. A Langevin
    integrator or bead masses without the per-bead frictions would give another trajectory."""
    import mdtraj

    from openmm_dynmatch import trajio
    from openmm_dynmatch.cli import main as dynmatch
    from openmm_dynmatch.openmm.export import export
    from openmm_dynmatch.openmm.runner import load_walkers

    meta = {"n_beads": 3, "bead_names": ["A", "B", "C"], "bead_types": [0, 1, 2], "type_names": ["A", "B", "C"],
            "masses_amu": [12.0, 30.0, 16.0], "temperature_k": 300.0, "integrator": integrator,
            "friction_per_ps": float(np.mean(frictions)), "bead_friction_per_ps": frictions,
            "timestep_ps": 0.002, "cutoff_nm": None, "periodic": False, "bonds": [[0, 1], [1, 2]]}
    model = export(HarmonicChain(1000.0, 0.3), tmp_path / "model.pt", meta)
    start = tmp_path / "start.h5"
    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    for name in meta["bead_names"]:
        top.add_atom(name, None, residue)
    with trajio.TrajectoryWriter(start, top, {}) as writer:
        writer.write(np.array([[[0.0, 0.0, 0.0], [0.31, 0.02, 0.0], [0.55, 0.2, 0.03]]]), [0.0])

    example = _load_example_script()
    assert example.main([str(model), "--ps", "0.2", "--frame-interval-ps", "0.02", "--out", str(tmp_path / "ex.dcd"),
                         "--start", str(start), "--seed", "3"]) == 0
    assert dynmatch(["simulate", "--model", str(model), "--steps", "100", "--out", str(tmp_path / "cg.h5"),
                     "--start", str(start), "--platform", "Reference", "--seed", "3", "--frame-interval-ps", "0.02",
                     "--no-progress", "--threads", "1"]) == 0
    script = mdtraj.load_dcd(str(tmp_path / "ex.dcd"), top=top).xyz
    simulated = load_walkers(tmp_path / "cg.h5")[0]
    assert script.shape == simulated.shape == (10, 3, 3)
    assert np.abs(simulated[-1] - simulated[0]).max() > 0.01  # the beads moved
    np.testing.assert_allclose(script, simulated, rtol=0, atol=2e-5)  # both files store float32

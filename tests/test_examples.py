"""The example configurations load, and every `dynmatch` command in examples/README.md parses."""
import re
import shlex
from pathlib import Path

import pytest

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

"""Typed YAML configuration: validation, overrides, round trip, and the docs' config reference."""
from pathlib import Path

import pytest
import yaml

from openmm_dynmatch import config


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = config.load_config(overrides=["train.iterations=7", "dynamics.friction_per_ps=2.5"])
    path = tmp_path / "run" / "config.yaml"
    config.write_config(cfg, path)
    again = config.load_config(path)
    assert again == cfg
    assert again.train.iterations == 7 and again.dynamics.friction_per_ps == 2.5


def test_yaml_values_override_defaults(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"train": {"walkers": 64, "mode": "free"}, "data": {"window_frames": 4}}))
    cfg = config.load_config(path, overrides=["train.walkers=32"])
    assert cfg.train.walkers == 32  # flag beats file
    assert cfg.train.mode == "free" and cfg.data.window_frames == 4
    assert cfg.train.classifier_steps == config.TrainConfig().classifier_steps


@pytest.mark.parametrize("data, message", [
    ({"train": {"iterationz": 3}}, "unknown key(s) ['iterationz']"),
    ({"trian": {}}, "unknown key(s) ['trian']"),
    ({"train": {"iterations": "many"}}, "config.train.iterations: expected an integer"),
    ({"train": {"iterations": 2.5}}, "expected an integer"),
    ({"dynamics": {"learn_friction": "yes"}}, "expected true or false"),
    ({"dynamics": {"integrator": "verlet"}}, "expected one of ['langevin', 'brownian']"),
    ({"train": 5}, "config.train: expected a mapping"),
])
def test_bad_configs_are_rejected_with_the_key_named(data, message):
    with pytest.raises(ValueError) as err:
        config.from_dict(config.Config, data)
    assert message in str(err.value)


def test_unknown_key_error_lists_known_keys():
    with pytest.raises(ValueError, match="known keys: .*'walkers'"):
        config.from_dict(config.Config, {"train": {"walker": 5}})


def test_integer_is_accepted_for_float_field():
    cfg = config.from_dict(config.Config, {"dynamics": {"timestep_ps": 1}})
    assert isinstance(cfg.dynamics.timestep_ps, float) and cfg.dynamics.timestep_ps == 1.0


def test_malformed_override_is_rejected():
    with pytest.raises(ValueError, match="section.key=value"):
        config.load_config(overrides=["train.iterations"])


def test_docs_config_reference_matches_the_code():
    docs = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert docs.read_text() == config.config_reference() + "\n", (
        "docs/config.md is out of date: regenerate it with "
        "`python -c 'from openmm_dynmatch.config import config_reference; print(config_reference())' "
        "> docs/config.md`")

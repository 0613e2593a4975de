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


@pytest.mark.parametrize("override, message", [
    ("train.walkers=-4", "config.train.walkers: expected a value in [1, inf) (>= 1), got -4"),
    ("dynamics.timestep_ps=0", "config.dynamics.timestep_ps: expected a value in (0, inf) (> 0), got 0.0"),
    ("data.validation_fraction=1.0", "config.data.validation_fraction: expected a value in [0, 1)"),
    ("train.lr_potential=-1e-3", "config.train.lr_potential: expected a value in [0, inf)"),
    ("train.seed=-1", "config.train.seed: expected a value in [0, inf)"),
    ("dynamics.friction_per_ps=.nan", "config.dynamics.friction_per_ps: expected a value in (0, inf)"),
    ("train.friction_min_per_ps=200", "friction_min_per_ps (200.0) must be below friction_max_per_ps (100.0)"),
])
def test_out_of_range_values_are_refused_at_load(override, message):
    with pytest.raises(ValueError) as err:
        config.load_config(overrides=[override])
    assert message in str(err.value)


def test_range_edges_and_optional_none_are_accepted():
    cfg = config.load_config(overrides=["train.walkers=1", "data.validation_fraction=0",
                                        "classifier.options={cutoff_nm: null}", "train.switch_to_free_at=-1",
                                        "train.probe_windows=0"])
    assert cfg.train.walkers == 1 and cfg.classifier.options == {"cutoff_nm": None}


@pytest.mark.parametrize("override, message", [
    ("classifier.hidden_scalars=32", "hidden_scalars -> classifier.options.hidden_scalars (equivariant)"),
    ("classifier.options={hidden: 32}", "config.classifier.options: unknown option(s) ['hidden'] for WindowClassifier"),
    ("classifier.options={n_layers: 2.5}", "config.classifier.options.n_layers: expected int like the default 2"),
    ("potential.net={hiden: 8}", "config.potential.net: unknown option(s) ['hiden'] for InternalMLP"),
    ("potential.kind=transformer", "config.potential.kind: expected one of"),
    ("train.sampler=cluster", "config.train.sampler: expected one of ['local']"),
    ("dynamics.integrator=verlet", "config.dynamics.integrator: expected one of ['langevin', 'brownian']"),
])
def test_kind_options_and_registry_choices_are_checked_at_load(override, message):
    with pytest.raises(ValueError) as err:
        config.load_config(overrides=[override])
    assert message in str(err.value)


def test_every_numeric_key_has_a_range_and_the_reference_shows_it():
    import dataclasses
    import typing

    for section in dataclasses.fields(config.Config):
        cls = typing.get_type_hints(config.Config)[section.name]
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            if hints[item.name] in (int, float, typing.Optional[float], typing.Optional[int]):
                assert item.metadata.get("valid"), f"{section.name}.{item.name} has no range"
    assert "| `walkers` | int | `256` | CG walkers (windows) simulated per iteration; allowed: >= 1 |" \
        in config.config_reference()


def test_config_differences_ignore_resumable_keys():
    base = config.load_config()
    assert "train.iterations" in config.resumable_keys()
    more = config.load_config(overrides=["train.iterations=900", "train.checkpoint_every=5"])
    assert config.config_differences(base, more) == []
    changed = config.load_config(overrides=["train.seed=3", "dynamics.friction_per_ps=2"])
    assert config.config_differences(base, changed) == ["dynamics.friction_per_ps", "train.seed"]


def test_malformed_range_spec_fails_early():
    with pytest.raises(ValueError, match="range must look like"):
        config.option(1, "help", valid="1..inf")


def test_exponent_without_dot_is_read_as_a_number():
    # YAML 1.1 reads 1e-4 as a string; a float key takes the number meant, a word is still refused
    assert config.load_config(overrides=["train.lr_potential=1e-4"]).train.lr_potential == 1e-4
    with pytest.raises(ValueError, match="config.train.lr_potential: expected a number, got 'fast'"):
        config.load_config(overrides=["train.lr_potential=fast"])

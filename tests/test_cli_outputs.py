"""The command line's policy for existing outputs: ``map``, ``export`` and ``analyze`` refuse to replace them
unless given ``--overwrite`` (``simulate``: tests/test_runner.py)."""
import mdtraj
import numpy as np
import pytest
from mdtraj.core import element

from openmm_dynmatch import trajio
from openmm_dynmatch.cli import main
from openmm_dynmatch.cli.outputs import refuse_existing


def _refused(command, capsys, *paths) -> str:
    """Run a command that must be refused; returns its error line."""
    assert main(command + ["--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "already exist" in err and "--overwrite" in err
    for path in paths:
        assert str(path) in err
    return err


def test_map_refuses_an_existing_output_unless_overwrite(tmp_path, rng, capsys):
    top = mdtraj.Topology()
    residue = top.add_residue("XA", top.add_chain())
    for name in ("C", "O", "N", "H"):
        top.add_atom(name, element.get_by_symbol(name), residue)
    with trajio.TrajectoryWriter(tmp_path / "aa.h5", top, {"temperature_k": 300.0, "frame_interval_ps": 0.1}) as w:
        w.write(rng.normal(size=(3, 4, 3)), 0.1 * np.arange(3))
    spec = tmp_path / "map.yaml"
    spec.write_text("bonds: sequence\nbeads:\n  - {name: A, indices: [0, 1]}\n  - {name: B, indices: [2, 3]}\n")
    out = tmp_path / "cg.h5"
    out.write_bytes(b"an earlier result")
    command = ["map", "--aa", str(tmp_path / "aa.h5"), "--mapping", str(spec), "--out", str(out), "--no-progress"]
    _refused(command, capsys, out)
    assert out.read_bytes() == b"an earlier result"
    assert main(command + ["--overwrite", "--threads", "1"]) == 0
    assert trajio.count_frames(out) == 3


def test_export_refuses_an_existing_model_unless_overwrite(tmp_path, capsys):
    from test_export import chain_metadata

    from openmm_dynmatch.models import build_potential, save_potential
    from openmm_dynmatch.openmm.export import load_metadata

    bonds = [[0, 1], [1, 2], [2, 3]]
    potential = build_potential({"n_beads": 4, "bonds": bonds, "prior": {"bonds": bonds, "bond_r0_nm": 0.38,
                                                                          "bond_k": 1000.0}})
    save_potential(tmp_path / "potential.pt", potential, chain_metadata(4))
    out = tmp_path / "model.pt"
    out.write_bytes(b"an earlier model")
    command = ["export", "--potential", str(tmp_path / "potential.pt"), "--out", str(out)]
    _refused(command, capsys, out)
    assert out.read_bytes() == b"an earlier model"
    assert main(command + ["--overwrite", "--threads", "1"]) == 0
    assert load_metadata(out)["n_beads"] == 4


def test_analyze_refuses_a_folder_with_a_report_unless_overwrite(tmp_path, capsys):
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("an earlier report")
    command = ["analyze", "--aa", str(tmp_path / "aa.h5"), "--cg", str(tmp_path / "cg.h5"), "--out", str(report)]
    err = _refused(command, capsys, report)
    assert "a folder that is not empty" in err
    assert (report / "report.md").read_text() == "an earlier report"
    # with --overwrite the verb goes on (and here stops at the missing input, naming it)
    assert main(command + ["--overwrite", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "aa.h5" in err and "already exist" not in err


def test_refuse_existing_lets_missing_files_and_empty_folders_through(tmp_path):
    (tmp_path / "empty").mkdir()
    refuse_existing([tmp_path / "missing.h5", tmp_path / "empty"], overwrite=False)
    (tmp_path / "a.h5").write_text("x")
    (tmp_path / "b.h5").write_text("x")
    with pytest.raises(FileExistsError, match=r"--out: .*a\.h5, .*b\.h5 already exist; pass --overwrite to "
                                              r"replace them, or choose another --out"):
        refuse_existing([tmp_path / "a.h5", tmp_path / "b.h5"], overwrite=False)
    refuse_existing([tmp_path / "a.h5"], overwrite=True)

"""Trajectory files: damaged files give one error that names the file, whatever function opens them."""
import numpy as np
import pytest

from openmm_dynmatch import trajio
from openmm_dynmatch.errors import FileFormatError


@pytest.fixture
def good_file(tmp_path):
    import mdtraj

    topology = mdtraj.Topology()
    residue = topology.add_residue("CG", topology.add_chain())
    for i in range(3):
        topology.add_atom(f"B{i}", mdtraj.element.carbon, residue)
    path = tmp_path / "good.h5"
    with trajio.TrajectoryWriter(path, topology, {"temperature_k": 300.0}) as writer:
        writer.write(np.random.default_rng(0).normal(size=(300, 3, 3)), np.arange(300) * 0.1)
    return path


def _damaged(tmp_path, good_file, kind):
    data = good_file.read_bytes()
    path = tmp_path / f"{kind}.h5"
    path.write_bytes(data[:len(data) // 2] if kind == "truncated" else b"not an HDF5 file\n" * 64)
    return path


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
@pytest.mark.parametrize("reader", [trajio.load, trajio.read_metadata, trajio.count_frames,
                                    lambda path: trajio.read_array(path, "constraints")])
def test_damaged_file_is_one_line_naming_the_file(tmp_path, good_file, kind, reader):
    path = _damaged(tmp_path, good_file, kind)
    with pytest.raises(FileFormatError) as err:
        reader(path)
    message = str(err.value)
    assert message.startswith(f"{path}: cannot read it as an HDF5 trajectory") and "\n" not in message
    assert "write it again" in message and len(message) < 400


def test_good_file_still_loads(good_file):
    data = trajio.load(good_file, stride=2)
    assert data.positions.shape == (150, 3, 3) and data.metadata["temperature_k"] == 300.0
    assert trajio.count_frames(good_file) == 300


def test_cli_reports_a_truncated_trajectory_in_one_line(tmp_path, good_file, capsys):
    from openmm_dynmatch.cli import main

    path = _damaged(tmp_path, good_file, "truncated")
    assert main(["analyze", "--aa", str(path), "--cg", str(good_file), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 2
    printed = capsys.readouterr().err.strip()
    assert printed.startswith(f"dynmatch analyze: error: {path}: cannot read it as an HDF5 trajectory")
    assert "\n" not in printed and "HDF5-DIAG" not in printed

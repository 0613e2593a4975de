"""``benchmarks/memory_bath.py``: its productions are science.py's (start frames, walker groups, the names the
analysis reads), with the hidden particles left out of the files."""
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from toys import HarmonicChain
from openmm_dynmatch import trajio
from openmm_dynmatch.cgdata import import_cg
from openmm_dynmatch.demo import production_starts
from openmm_dynmatch.openmm.export import export
from openmm_dynmatch.openmm.runner import load_walkers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from core_memory import production_files  # noqa: E402
from memory_bath import bath_key, bath_production, group_files  # noqa: E402
from memory_truth import HiddenBath  # noqa: E402

MASSES = [12.0, 13.0, 14.0, 15.0]


def test_production_starts_take_every_kth_frame_and_repeat_when_frames_are_few():
    frames = np.arange(10.0)[:, None, None] * np.ones((1, 2, 3))
    np.testing.assert_array_equal(production_starts(frames, 4)[:, 0, 0], [0, 2, 4, 6])  # every 10 // 4 = 2nd
    np.testing.assert_array_equal(production_starts(frames, 12)[:, 0, 0], list(range(10)) + [0, 1])


def test_group_files_are_what_the_analysis_reads(tmp_path):
    files = group_files(tmp_path, bath_key(0.5, 4.0, 0.1), 3)
    assert [f.name for f in files] == ["cg_bath_0.5_4_0.1.h5", "cg_bath_0.5_4_0.1_group1.h5",
                                       "cg_bath_0.5_4_0.1_group2.h5"]
    for f in files:
        f.write_bytes(b"")
    assert production_files(tmp_path, "bath_0.5_4_0.1") == files


def test_bath_groups_start_from_the_same_frames_and_hold_the_beads_only(tmp_path, rng, one_thread):
    from science import DEFAULT

    meta = {"n_beads": 4, "bead_names": [f"B{i}" for i in range(4)], "bead_types": [0] * 4, "type_names": ["C"],
            "masses_amu": MASSES, "temperature_k": 300.0, "integrator": "langevin", "friction_per_ps": 1.0,
            "timestep_ps": 0.002, "cutoff_nm": None, "periodic": False, "bonds": [[0, 1], [1, 2], [2, 3]]}
    model = export(HarmonicChain(800.0), tmp_path / "chain.pt", meta)
    line = np.stack([0.3 * np.arange(4), np.zeros(4), np.zeros(4)], axis=1)
    frames = line[None] + 0.02 * rng.standard_normal((30, 4, 3))
    data_path = import_cg(frames, tmp_path / "data.h5", masses_amu=MASSES, bonds=meta["bonds"], temperature_k=300.0,
                          frame_interval_ps=0.1)
    data = trajio.load(data_path)
    settings = replace(DEFAULT, cg_walkers=3, cg_ns=0.0005, frame_interval_ps=0.1)  # 0.5 ps, 6 frames
    bath = HiddenBath.from_memory(0.5, 4.0, 0.1, bead_mass_amu=float(np.mean(MASSES)))
    files = bath_production(model, data, bath, group_files(tmp_path, "b", 2), settings, seed=3)
    starts = production_starts(frames, 3)
    walkers = [load_walkers(f) for f in files]
    for group in walkers:
        assert len(group) == 3
        for w, walker in enumerate(group):
            assert walker.shape == (6, 4, 3)
            np.testing.assert_allclose(walker[0], starts[w], atol=1e-6)
            assert np.all(np.isfinite(walker))
    assert not np.allclose(walkers[0][0][-1], walkers[1][0][-1])  # other noise in the other group
    out_meta = trajio.read_metadata(files[1])
    assert out_meta["n_walkers"] == 3 and out_meta["walker_group"] == [1, 2] and out_meta["frame_interval_ps"] == 0.1
    assert out_meta["bath"]["spring_kj_per_mol_nm2"] == bath.spring_kj_per_mol_nm2
    assert "trajectory_lengths" not in out_meta and "friction_per_ps" not in out_meta

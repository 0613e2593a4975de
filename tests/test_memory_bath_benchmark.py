"""``benchmarks/memory_bath.py``: its productions are science.py's (start frames, walker groups, the names the
analysis reads), with the hidden particles left out of the files."""
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from toys import HarmonicChain
from openmm_dynmatch import trajio
from openmm_dynmatch.cgdata import import_cg
from openmm_dynmatch.demo import production_starts
from openmm_dynmatch.openmm.export import export
from openmm_dynmatch.openmm.runner import load_walkers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from core_memory import production_files  # noqa: E402
from memory_bath import bath_key, bath_production, group_files, made_at, pool  # noqa: E402
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
    assert made_at(files, 3) == files  # reused at their own seed
    with pytest.raises(ValueError, match="was made at seed 3, not at --seed 4"):
        made_at(files, 4)


def _result(seed, own, markov):
    motion = {name: {"ratio": [1.0, 1.1], "log_se": [0.01, 0.02]} for name in ("bead_msd_internal",
                                                                                "bead_msd_com_free")}
    rows = {"dm": {"kind": "own", "friction_per_ps": 4.0, "productions": ["cg_dm.h5"],
                   "kinetics": {"productions": [{"msm": v, "core": v} for v in own]}, "motion": motion},
            "markov_2": {"kind": "markov", "friction_per_ps": 2.0, "productions": ["cg_markov_2.h5"],
                         "kinetics": {"productions": [{"msm": v, "core": v} for v in markov]},
                         "motion": {name: {"ratio": [seed, seed], "log_se": [0.0, 0.0]} for name in motion}}}
    return {"benchmark": "memory_bath", "work_dir": "w", "model": "dm", "seed": seed, "lags_ps": [0.1, 0.5],
            "window_lag_ps": 0.5, "rows": rows}


def test_pooled_runs_judge_each_row_over_all_its_productions_and_the_own_ones_once():
    a, b = _result(1, [1.0, 1.2], [0.9, 1.1]), _result(11, [1.0, 1.2], [1.3, 1.5])
    out = pool([a, b], ["a.json", "b.json"])
    assert out["seeds"] == [1, 11] and out["sources"] == ["a.json", "b.json"]
    own, markov = out["rows"]["dm"], out["rows"]["markov_2"]
    assert len(own["kinetics"]["productions"]) == 2 and own["seeds"] == [1]  # the same files in both runs
    assert own["kinetics"]["core"] == pytest.approx(1.1)
    assert markov["seeds"] == [1, 11] and markov["kinetics"]["msm"] == pytest.approx(1.2)
    sd = math.sqrt(sum((v - 1.2) ** 2 for v in (0.9, 1.1, 1.3, 1.5)) / 3)
    assert markov["kinetics"]["msm_se"] == pytest.approx(sd / 2)
    assert markov["motion"]["bead_msd_internal"]["ratio"] == pytest.approx([6.0, 6.0])  # mean of 1 and 11


def test_runs_of_other_models_are_not_pooled():
    other = _result(2, [1.0], [1.0])
    other["model"] = "fm"
    with pytest.raises(ValueError, match="other work directories, models or lags"):
        pool([_result(1, [1.0], [1.0]), other])

"""The dwell bookkeeping of ``benchmarks/core_memory.py`` against hand counts."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from core_memory import dwell_statistics, production_files  # noqa: E402


def test_only_complete_dwells_count_and_gaps_belong_to_the_last_core():
    # milestones: (-1) 0 0 0 | 1 1 1 1 1 | 0 0 | 1 ; the first 0-dwell and the last 1-dwell are cut by the ends
    labels = np.array([-1, 0, 0, -1, 1, -1, 1, 1, 1, 0, 0, 1])
    stats = dwell_statistics([labels], 0.5)
    assert stats["helical"]["n"] == 1 and stats["helical"]["mean_ps"] == pytest.approx(5 * 0.5)
    assert stats["extended"]["n"] == 1 and stats["extended"]["mean_ps"] == pytest.approx(2 * 0.5)
    assert stats["extended"]["fraction_below_1ps"] == 0.0 and stats["extended"]["cv"] is None
    two = dwell_statistics([labels, np.array([1, 0, 1, 0, 0, 0, 1])], 0.5)
    assert two["extended"]["n"] == 3  # 2, 1 and 3 frames
    durations = np.array([2, 1, 3]) * 0.5
    assert two["extended"]["cv"] == pytest.approx(durations.std() / durations.mean())
    assert two["extended"]["fraction_below_1ps"] == pytest.approx(1 / 3)


def test_production_files_keep_the_first_production_first_and_skip_energies(tmp_path):
    for name in ("cg_dm.h5", "cg_dm.energies.h5", "cg_dm_seed2.h5", "cg_dm_seed1.h5", "cg_dm_seed1.energies.h5",
                 "cg_dmx.h5"):
        (tmp_path / name).write_bytes(b"")
    assert [f.name for f in production_files(tmp_path, "dm")] == ["cg_dm.h5", "cg_dm_seed1.h5", "cg_dm_seed2.h5"]

"""Dynamic matching moves a CG model's handedness toward the data: a chiral 4-bead chain simulated by OpenMM
with a known dihedral term (about 88% ``phi > 0``), learned from a mirror-symmetric start (50%) by an
``internal_mlp`` net against the chirality-aware classifier, in conditional mode; the trained model's
population is measured by an OpenMM run. Full size: the ``chirality`` case of ``benchmarks/recovery.py``."""
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from recovery import QUICK, chirality_case  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# conditional windows suffice here: a window (50 steps) spans the handedness relaxation (sign autocorrelation
# 0.12 after 100 steps), so the classifier sees the biased drift; cheaper per iteration than free mode
SMALL = replace(QUICK, mode="conditional", data_steps=4000, iterations=100, walkers=96, classifier_warmup=15,
                production_steps=2000, trace_every=100)


@pytest.mark.integration
def test_dynamic_matching_recovers_the_handedness_population(tmp_path):
    result = chirality_case(SMALL, tmp_path, seed=0)
    assert result["data_right_handed"] > 0.8, "the toy must favour one handedness for the test to mean anything"
    assert result["mirror_gap_trained_kj_per_mol"] > 0, "the potential must prefer the data's handedness"
    assert abs(result["cg_right_handed"] - result["data_right_handed"]) < 0.05, result

"""The end-to-end demo: `dynmatch demo --quick` runs every stage and writes a complete report."""
import json
import math
from pathlib import Path

import pytest

from openmm_dynmatch.cli import main as cli_main

pytestmark = pytest.mark.integration

FIGURES = ("fes.png", "timescales.png", "msd.png", "acf.png", "bonds.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _finite_numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _finite_numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _finite_numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli_main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report' / 'report.md'}" in printed
    assert "DM vs AA" in printed and "FM vs AA" in printed
    for name in FIGURES:
        data = (out / "report" / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, name
    report = (out / "report" / "report.md").read_text()
    assert all(name in report for name in FIGURES)
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    for model in ("cg", "baseline"):
        summary = metrics[model]["summary"]
        headline = [summary["js_fes_2d"], summary["timescale_ratio"][0], summary["diffusion_com_ratio"]]
        assert all(isinstance(v, float) and math.isfinite(v) for v in headline), (model, headline)
        assert 0.0 <= summary["js_fes_2d"] <= math.log(2) + 1e-9
    demo = json.loads((out / "demo.json").read_text())
    for key in ("aa", "aa_mapped", "report"):
        assert Path(demo[key]).is_file(), key
    for model_path in demo["models"].values():
        assert Path(model_path).is_file() and model_path.endswith("model.pt")
    assert all(math.isfinite(v) for v in _finite_numbers(demo["headline"]))

"""The evaluation report on small synthetic AA/CG files: every figure written, metrics finite, CLI verb."""
import argparse
import json
import math

import numpy as np
import pytest

from openmm_dynmatch import report, trajio

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BACKBONE_NAMES = ["ACE1-C", "ALA2-N", "ALA2-CA", "ALA2-C", "NME3-N"]


def _chain(n_frames, rng, step, bond=0.15, angle=1.9, jitter=0.004, drift=0.01):
    """A 5-bead chain built from internal coordinates: random-walk dihedrals in two wells, noisy beads."""
    d = rng.uniform(-np.pi, np.pi, 2)
    torsions = np.empty((n_frames, 2))
    for t in range(n_frames):
        d = d + step * rng.normal(size=2) - 0.1 * np.sin(2 * d)
        torsions[t] = d
    pos = np.zeros((n_frames, 5, 3))
    pos[:, 1, 0] = bond
    pos[:, 2] = [bond - bond * np.cos(angle), bond * np.sin(angle), 0.0]
    for i in range(3, 5):
        a, b, c = pos[:, i - 3], pos[:, i - 2], pos[:, i - 1]
        bc = (c - b) / np.linalg.norm(c - b, axis=1)[:, None]
        n = np.cross(b - a, bc)
        n /= np.linalg.norm(n, axis=1)[:, None]
        m = np.cross(n, bc)
        phi = torsions[:, i - 3]
        pos[:, i] = c - bond * np.cos(angle) * bc + bond * np.sin(angle) * (
            np.cos(phi)[:, None] * m + np.sin(phi)[:, None] * n)
    pos += jitter * rng.normal(size=pos.shape)
    return pos + np.cumsum(drift * rng.normal(size=(n_frames, 1, 3)), axis=0)


def _write(path, positions, names, dt=0.5):
    import mdtraj

    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    atoms = [top.add_atom(name, mdtraj.element.carbon, residue) for name in names]
    for i in range(len(names) - 1):
        top.add_bond(atoms[i], atoms[i + 1])
    metadata = {"temperature_k": 300.0, "timestep_ps": 0.002, "frame_interval_ps": dt,
                "masses_amu": [12.0] * len(names), "bead_names": names, "bead_types": [0] * len(names),
                "type_names": ["C"], "bonds": [[i, i + 1] for i in range(len(names) - 1)],
                "source": "synthetic", "forces_mapped": False}
    with trajio.TrajectoryWriter(path, top, metadata) as writer:
        writer.write(positions, np.arange(len(positions)) * dt)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("report")
    out = {}
    for label, step in (("aa", 0.25), ("cg", 0.4), ("fm", 0.6)):
        out[label] = _write(folder / f"{label}.h5", _chain(1200, rng, step), BACKBONE_NAMES)
    return folder, out


def _finite_numbers(value):
    if isinstance(value, dict):
        return [x for v in value.values() for x in _finite_numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _finite_numbers(v)]
    return [value]


def test_report_writes_figures_and_finite_metrics(files):
    folder, paths = files
    out_dir = folder / "out"
    metrics = report.write_report(paths["aa"], paths["cg"], out_dir, cg_baseline_path=paths["fm"],
                                  labels={"baseline": "FM"}, n_clusters=8, n_bootstrap=3, n_bins=30)
    for name in report.FIGURES:
        data = (out_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    on_disk = json.loads((out_dir / "metrics.json").read_text())
    assert on_disk == metrics
    for key in ("cg", "baseline"):
        summary = metrics[key]["summary"]
        assert metrics[key]["info"]["cv_names"] == ["phi", "psi"]  # backbone beads found by name
        numbers = _finite_numbers({k: v for k, v in summary.items() if not k.startswith("core_transitions")})
        assert numbers and all(isinstance(x, float) and math.isfinite(x) for x in numbers), \
            {k: v for k, v in summary.items() if k.startswith("core")}
        # committed-transition counts are whole numbers
        assert all(isinstance(summary[f"core_transitions_{side}"], int) for side in ("aa", "cg"))
        assert 0.0 <= summary["js_fes_2d"] <= math.log(2.0)
    # AA data are the same in both comparisons: same FES and, with the same seed, the same timescales
    assert metrics["cg"]["fes"]["aa_2d"] == metrics["baseline"]["fes"]["aa_2d"]
    assert metrics["cg"]["its"]["aa"] == metrics["baseline"]["its"]["aa"]
    text = (out_dir / "report.md").read_text()
    assert all(f"]({name})" in text for name in report.FIGURES)
    assert "FM" in text and "JS divergence of the FES" in text
    # the CG chain's dihedrals move faster than AA's: its slowest timescale must come out shorter
    assert metrics["cg"]["summary"]["timescale_ratio"][0] < 1.0


def test_report_of_a_dimer_has_one_cv(tmp_path):
    rng = np.random.default_rng(5)
    paths = {}
    for label, k in (("aa", 0.05), ("cg", 0.2)):
        bond = np.empty(600)
        x = 0.3
        for t in range(600):
            x += -k * (x - 0.3) + 0.01 * rng.normal()
            bond[t] = x
        positions = np.zeros((600, 2, 3))
        positions[:, 1, 0] = bond
        positions += np.cumsum(0.01 * rng.normal(size=(600, 1, 3)), axis=0)
        paths[label] = _write(tmp_path / f"{label}.h5", positions, ["A", "B"])
    metrics = report.write_report(paths["aa"], paths["cg"], tmp_path / "out", n_clusters=5, n_bootstrap=2)
    assert metrics["cg"]["info"]["cv_names"] == ["tIC1"] and metrics["cg"]["summary"]["js_fes_2d"] is None
    # the single TICA coordinate of a dimer is its bond length up to sign and scale: same JS as the bond
    assert metrics["cg"]["summary"]["js_fes_1d"]["tIC1"] == pytest.approx(metrics["cg"]["summary"]["bond_js_max"],
                                                                          abs=5e-3)
    assert all((tmp_path / "out" / name).read_bytes().startswith(PNG_MAGIC) for name in report.FIGURES)


def test_verdicts_follow_the_thresholds():
    assert report._js_verdict(0.01) == "close" and report._js_verdict(0.1) == "fair"
    assert report._js_verdict(0.3) == "differs"
    assert report._ratio_verdict(1.2) == "matches" and report._ratio_verdict(0.7).startswith("too fast")
    assert report._ratio_verdict(1.5).startswith("too slow")
    assert report._ratio_verdict(1.5, above="too fast").startswith("too fast")
    assert report._ratio_verdict(None) == "undefined"


def test_cli_verb_on_tica_coordinates(files, capsys):
    from openmm_dynmatch.cli import analyze

    folder, paths = files
    rng = np.random.default_rng(11)
    names = [f"B{i}" for i in range(5)]
    aa = _write(folder / "aa_generic.h5", _chain(800, rng, 0.25), names)
    cg = _write(folder / "cg_generic.h5", _chain(800, rng, 0.4), names)
    parser = argparse.ArgumentParser()
    analyze.add_arguments(parser)
    out_dir = folder / "cli"
    args = parser.parse_args(["--aa", str(aa), "--cg", str(cg), "--out", str(out_dir), "--lag", "1", "2", "5",
                              "--clusters", "6", "--bootstrap", "2", "--bins", "20",
                              "--no-progress"])
    assert analyze.run(args) == 0
    printed = capsys.readouterr().out
    assert str(out_dir / "report.md") in printed and "JS divergence" in printed
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["cg"]["info"]["cv_names"] == ["tIC1", "tIC2"]
    assert metrics["baseline"] is None
    np.testing.assert_allclose(metrics["cg"]["its"]["aa"]["lags_ps"], [0.5, 1.0, 2.5])
    assert all((out_dir / name).stat().st_size > 0 for name in report.FIGURES)


def _metrics(timescale_ratio, timescales_aa, timescales_cg, lag_ps=5.0, crossings=(40, 0), core_ratio=None,
             aa_tau=65.0, cg_bound=1214.0, n_frames=(10000, 10000)):
    """A synthetic ``compare`` result holding what :func:`report.verdicts` reads."""
    summary = {"js_fes_2d": 0.02, "js_fes_1d": {"phi": 0.01, "psi": 0.02}, "timescale_lag_ps": lag_ps,
               "timescale_ratio": timescale_ratio, "timescales_aa_ps": timescales_aa,
               "timescales_cg_ps": timescales_cg, "diffusion_com_ratio": 1.0, "acf_time_ratio": {"psi": 1.0},
               "bond_js_max": 0.01, "core_relaxation_ratio": core_ratio, "core_relaxation_aa_ps": aa_tau,
               "core_relaxation_cg_ps": None if core_ratio is None else core_ratio * aa_tau,
               "core_relaxation_cg_bound_ps": cg_bound, "core_transitions_aa": crossings[0],
               "core_transitions_cg": crossings[1]}
    info = {"frame_interval_ps": 0.1, "n_frames_aa": n_frames[0], "n_frames_cg": n_frames[1]}
    return {"summary": summary, "info": info}


def test_acf_times_within_basins_are_not_flagged_against_crossings():
    # fast motion within the basins with slower crossings is physics, not a contradiction
    metrics = _metrics([1.9], [65.0], [120.0], crossings=(40, 20), core_ratio=2.0)
    metrics["summary"]["acf_time_ratio"] = {"psi": 0.6}
    rows = {name: (value, verdict) for name, value, verdict in report.verdicts(metrics)}
    assert rows["ACF integrated time of psi CG/AA"] == (0.6, report._ratio_verdict(0.6))
    metrics["summary"]["core_transitions_cg"] = 0  # no crossing at all: not comparable
    rows = {name: verdict for name, _, verdict in report.verdicts(metrics)}
    assert rows["ACF integrated time of psi CG/AA"].startswith("not comparable")


def test_mirror_region_population_is_reported_against_aa():
    metrics = _metrics([1.0], [65.0], [65.0], crossings=(40, 40), core_ratio=1.0)
    metrics["summary"].update(phi_positive_fraction_aa=0.001, phi_positive_fraction_cg=0.019)
    rows = {name: (value, verdict) for name, value, verdict in report.verdicts(metrics)}
    value, verdict = rows["fraction of frames at phi > 0 (mirror image), CG"]
    assert value == 0.019 and verdict.startswith("AA 0.001") and "0.018 too much weight" in verdict
    metrics["summary"]["phi_positive_fraction_cg"] = 0.005
    rows = {name: verdict for name, _, verdict in report.verdicts(metrics)}
    assert rows["fraction of frames at phi > 0 (mirror image), CG"] == "AA 0.001"


def test_memory_ratios_that_differ_say_both_times_cannot_match():
    metrics = _metrics([1.0], [65.0], [65.0], crossings=(40, 40), core_ratio=1.0)
    assert "psi switching memory ratio, CG" not in {name for name, _, _ in report.verdicts(metrics)}
    metrics["summary"].update(core_memory_ratio_aa=1.33, core_memory_ratio_cg=0.95)  # 0.95 / 1.33 = 0.71
    rows = {name: (value, verdict) for name, value, verdict in report.verdicts(metrics)}
    value, verdict = rows["psi switching memory ratio, CG"]
    assert value == 0.95 and verdict.startswith("AA 1.3, CG 0.95") and "cannot both match" in verdict
    metrics["summary"]["core_memory_ratio_cg"] = 1.2  # 1.2 / 1.33 = 0.90: within the tolerance
    rows = {name: verdict for name, _, verdict in report.verdicts(metrics)}
    assert "cannot" not in rows["psi switching memory ratio, CG"]


def test_mirror_fraction_counts_positive_phi(rng):
    from openmm_dynmatch.analysis import mirror_fraction

    phi_psi = rng.uniform(-np.pi, np.pi, size=(1000, 2))
    assert mirror_fraction(phi_psi) == np.count_nonzero(phi_psi[:, 0] > 0) / 1000


def _kinetic_rows(metrics):
    return {name: (value, verdict) for name, value, verdict in report.verdicts(metrics)
            if "timescale" in name or "relaxation" in name}


def test_a_model_that_never_crossed_is_not_called_fast_and_its_bound_is_shown():
    # the defect found: 0 CG crossings, CG MSM timescale 3 ps at a 5 ps lag, AA 65 ps
    rows = _kinetic_rows(_metrics([0.046], [65.0], [3.0]))
    (ts_value, ts_verdict), (core_value, core_verdict) = rows.values()
    assert ts_value is None and ts_verdict.startswith("not comparable") and "fast" not in ts_verdict
    assert core_value == pytest.approx(1214.0 / 65.0)
    assert core_verdict.startswith("too slow (at least 19x") and "0 CG / 40 AA crossings" in core_verdict
    assert "1214 ps" in core_verdict and "65 ps" in core_verdict


def test_timescale_below_the_lag_is_not_resolved():
    rows = _kinetic_rows(_metrics([0.5], [65.0], [3.0], crossings=(40, 40), core_ratio=1.0))
    value, verdict = rows["slowest timescale CG/AA at 5 ps"]
    assert value is None and verdict == "not resolved: timescale below the 5 ps lag (CG 3 ps)"


def test_msm_ratio_that_contradicts_the_crossings_is_flagged():
    # fewer CG crossings per ns but a "faster" MSM timescale: never reported as too fast
    value, verdict = _kinetic_rows(_metrics([0.5], [65.0], [32.5], crossings=(40, 10), core_ratio=3.0))[
        "slowest timescale CG/AA at 5 ps"]
    assert value is None and verdict.startswith("inconsistent: the ratio (0.5x)") and "CG 10, AA 40 per ns" in verdict
    # crossings per ns, not raw counts: 20 crossings in a quarter of the AA time is a higher rate
    value, verdict = _kinetic_rows(_metrics([0.5], [65.0], [32.5], crossings=(40, 20), core_ratio=0.5,
                                            n_frames=(10000, 2500)))["slowest timescale CG/AA at 5 ps"]
    assert value == 0.5 and verdict == "too fast (0.5x)"


def test_core_bound_of_a_short_cg_run_is_not_a_verdict():
    value, verdict = _kinetic_rows(_metrics([1.0], [65.0], [65.0], cg_bound=40.0))[
        "extended <-> helical relaxation time CG/AA (psi cores)"]
    assert value is None and verdict.startswith("undefined") and "simulate the CG model longer" in verdict


def test_markdown_shows_the_bound_and_no_false_speed_verdict(files):
    folder, paths = files
    rng = np.random.default_rng(1)
    stuck = _write(folder / "stuck.h5", _chain(1200, rng, 0.02), BACKBONE_NAMES)  # stays in the extended core
    metrics = report.write_report(paths["aa"], stuck, folder / "stuck_out", n_clusters=8, n_bootstrap=3,
                                  n_bins=30)
    summary = metrics["cg"]["summary"]
    assert summary["core_transitions_cg"] < summary["core_transitions_aa"]
    rows = {name: verdict for name, _, verdict in report.verdicts(metrics["cg"])}
    for name, verdict in rows.items():
        if "timescale" in name or "relaxation" in name or "ACF" in name:  # its within-basin times are short
            assert "too fast" not in verdict and "matches" not in verdict, (name, verdict)
    assert rows[f"slowest timescale CG/AA at {summary['timescale_lag_ps']:g} ps"].startswith("not comparable")
    text = (folder / "stuck_out" / "report.md").read_text()
    assert "extended <-> helical relaxation time" in text and "crossings" in text

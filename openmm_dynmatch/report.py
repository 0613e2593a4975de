"""Evaluation report: figures (PNG) and a Markdown summary of :func:`openmm_dynmatch.analysis.compare`.

:func:`write_report` loads a mapped AA file and a CG file (and optionally a baseline CG model, e.g. force
matching), compares each model with AA, and writes ``metrics.json``, the figures and ``report.md`` into one
folder. Figures use matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from . import trajio
from .analysis import compare
from .fileio import atomic_path, write_json, write_text

#: Verdict thresholds: JS divergence (nats) and relative deviation of CG/AA ratios from 1.
JS_CLOSE, JS_FAIR = 0.05, 0.15
RATIO_TOLERANCE = 0.25
FIGURES = ("fes.png", "timescales.png", "msd.png", "acf.png", "bonds.png")
_STYLES = {"aa": dict(color="black", linestyle="-"), "cg": dict(color="tab:blue", linestyle="--"),
           "baseline": dict(color="tab:orange", linestyle=":")}
_DEFAULT_LABELS = {"aa": "AA (mapped)", "cg": "CG", "baseline": "baseline"}


def write_report(aa_path, cg_path, out_dir, cg_baseline_path=None, labels: Optional[dict] = None,
                 stride: int = 1, run_dirs: Optional[dict] = None, **compare_kwargs) -> dict:
    """Compare CG (and a baseline) with AA; write ``metrics.json``, PNG figures and ``report.md``.

    Parameters
    ----------
    aa_path, cg_path : str or Path
        Mapped AA and CG trajectory files (trajio format), same beads and frame interval.
    out_dir : str or Path
        Output folder (created).
    cg_baseline_path : str or Path, optional
        A second CG model (e.g. force matching) compared with the same AA data.
    labels : dict, optional
        Legend names for ``"aa"``, ``"cg"``, ``"baseline"``.
    stride : int
        Load every ``stride``-th frame of every file.
    run_dirs : dict, optional
        Training run directories ``{"cg": ..., "baseline": ...}``: the report then shows their training
        curves (``training_<key>.png``, :func:`openmm_dynmatch.curves.report_training`) and headline numbers.
    **compare_kwargs
        Passed to :func:`openmm_dynmatch.analysis.compare` (``lags``, ``lag_ps``, ``n_clusters``, ...).

    Returns
    -------
    dict
        ``{"labels", "files", "cg": metrics, "baseline": metrics or None}`` as written to ``metrics.json``,
        plus ``"training"`` when ``run_dirs`` is given.
    """
    labels = {**_DEFAULT_LABELS, **(labels or {})}
    unknown = sorted(set(labels) - set(_DEFAULT_LABELS))
    if unknown:
        raise ValueError(f"unknown label keys {unknown}; available: {sorted(_DEFAULT_LABELS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    aa = trajio.load(aa_path, stride=stride)
    metrics = {"labels": labels, "files": {"aa": str(aa_path), "cg": str(cg_path),
                                           "baseline": str(cg_baseline_path) if cg_baseline_path else None},
               "cg": compare(aa, trajio.load(cg_path, stride=stride), **compare_kwargs), "baseline": None}
    if cg_baseline_path is not None:
        metrics["baseline"] = compare(aa, trajio.load(cg_baseline_path, stride=stride), **compare_kwargs)
    if run_dirs:
        from .curves import report_training

        metrics["training"] = report_training(run_dirs, labels, out_dir)
    write_json(out_dir / "metrics.json", metrics, indent=None)
    runs = {"cg": metrics["cg"], "baseline": metrics["baseline"]}
    plot_fes(runs, labels, out_dir / "fes.png")
    plot_timescales(runs, labels, out_dir / "timescales.png")
    plot_msd(runs, labels, out_dir / "msd.png")
    plot_acf(runs, labels, out_dir / "acf.png")
    plot_bonds(runs, labels, out_dir / "bonds.png")
    write_text(out_dir / "report.md", render_markdown(metrics))
    return metrics


# ----------------------------------------------------------------------------------------------- verdicts

def verdicts(metrics: dict) -> list:
    """Headline rows ``(name, value, verdict)`` of one comparison (``metrics`` from ``compare``).

    Kinetic verdicts are cross-checked: an MSM timescale below the lag time, or one of a CG model that never
    crossed between the psi cores (its MSM then describes motion within one basin), is not reported as a real
    timescale; the MSM is never allowed to call the CG faster than AA when it crossed between the cores less
    often (nor slower when it crossed more often); and when a side made no core crossings the relaxation row
    shows the lower bound its simulated time allows.
    """
    summary = metrics["summary"]
    rows = []
    js = summary.get("js_fes_2d")
    if js is None:
        js = max(v for v in summary["js_fes_1d"].values() if v is not None)
    rows.append(("JS divergence of the FES", js, _js_verdict(js)))
    rates = _crossing_rates(summary, metrics.get("info", {}))
    rows.append(_timescale_row(summary, rates))
    if "core_relaxation_ratio" in summary:
        rows.append(_core_row(summary))
    memory = _memory_row(summary)
    if memory is not None:
        rows.append(memory)
    rows.append(("COM diffusion coefficient CG/AA", summary["diffusion_com_ratio"],
                 _ratio_verdict(summary["diffusion_com_ratio"], above="too fast")))
    for name, value in summary["acf_time_ratio"].items():
        rows.append(_checked_against_crossings(f"ACF integrated time of {name} CG/AA", value, rates,
                                               check_direction=False))
    if summary.get("bond_js_max") is not None:
        rows.append(("largest bond-length JS divergence", summary["bond_js_max"],
                     _js_verdict(summary["bond_js_max"])))
    if summary.get("phi_positive_fraction_cg") is not None:
        rows.append(_mirror_row(summary["phi_positive_fraction_aa"], summary["phi_positive_fraction_cg"]))
    return rows


MIRROR_EXCESS = 0.01


def _mirror_row(aa: float, cg: float) -> tuple:
    """The population of the mirror-image region (phi > 0) of alanine dipeptide, CG against AA: a CG model
    blind to chirality puts weight where the L-peptide has almost none."""
    verdict = f"AA {aa:.3f}"
    if cg - aa > MIRROR_EXCESS:
        verdict += f": {cg - aa:.3f} too much weight in the mirror-image region"
    return ("fraction of frames at phi > 0 (mirror image), CG", cg, verdict)


def _crossing_rates(summary: dict, info: dict) -> Optional[dict]:
    """Committed psi-core crossings per ns of simulated time, ``{"aa", "cg"}``, or None without core data.

    Without frame counts in ``info`` the raw counts stand in (equal lengths assumed).
    """
    counts = {side: summary.get(f"core_transitions_{side}") for side in ("aa", "cg")}
    if any(n is None for n in counts.values()):
        return None
    dt = info.get("frame_interval_ps")
    times = {side: info.get(f"n_frames_{side}", 0) * dt * 1e-3 if dt else 0.0 for side in counts}
    if all(t > 0 for t in times.values()):
        return {side: counts[side] / times[side] for side in counts}
    return {side: float(counts[side]) for side in counts}


def _first(values):
    """First entry of a list of timescales (None when empty or missing)."""
    return values[0] if isinstance(values, (list, tuple, np.ndarray)) and len(values) else None


def _timescale_row(summary: dict, rates: Optional[dict]) -> tuple:
    """The slowest MSM timescale's row, checked against the lag time and against the core crossings."""
    lag = summary["timescale_lag_ps"]
    name = f"slowest timescale CG/AA at {lag:g} ps"
    ratio = _first(summary["timescale_ratio"])
    times = {"AA": _first(summary.get("timescales_aa_ps")), "CG": _first(summary.get("timescales_cg_ps"))}
    if rates is not None and rates["cg"] == 0 and rates["aa"] > 0:
        return name, None, ("not comparable: the CG never crossed between the psi cores, so its MSM timescale "
                            "describes motion within one basin (see the core relaxation row)")
    short = [f"{side} {value:.3g} ps" for side, value in times.items() if value is not None and value < lag]
    if short:
        return name, None, f"not resolved: timescale below the {lag:g} ps lag ({', '.join(short)})"
    return _checked_against_crossings(name, ratio, rates)


def _checked_against_crossings(name: str, ratio, rates: Optional[dict], check_direction: bool = True) -> tuple:
    """Row of a CG/AA time ratio checked against the psi-core crossing rates.

    A CG model that never crossed has only intra-basin times: not comparable. With ``check_direction`` (times
    meant to measure the crossing, such as the MSM's slowest timescale) a model that crossed less often (per ns)
    is not called faster than AA, nor one that crossed more often slower; the integrated ACF times are dominated
    by motion within the basins and may legitimately go the other way, so they are not direction-checked.
    """
    if rates is None or ratio is None or not np.isfinite(ratio):
        return name, ratio, _ratio_verdict(ratio)
    if rates["cg"] == 0 and rates["aa"] > 0:
        return name, None, (f"not comparable ({ratio:.2g}x): the CG never crossed between the psi cores, so this "
                            f"time describes motion within one basin")
    claims_faster, claims_slower = ratio < 1.0 - RATIO_TOLERANCE, ratio > 1.0 + RATIO_TOLERANCE
    if check_direction and (claims_faster and rates["cg"] < rates["aa"]) or (claims_slower and rates["cg"] > rates["aa"]):
        return name, None, (f"inconsistent: the ratio ({ratio:.2g}x) contradicts the psi-core crossings "
                            f"(CG {rates['cg']:.3g}, AA {rates['aa']:.3g} per ns); trust the core relaxation row")
    return name, ratio, _ratio_verdict(ratio)


def _core_row(summary: dict) -> tuple:
    """Extended <-> helical relaxation row; with no CG crossings, the lower bound of the CG/AA ratio."""
    name = "extended <-> helical relaxation time CG/AA (psi cores)"
    value = summary["core_relaxation_ratio"]
    n_aa, n_cg = summary.get("core_transitions_aa"), summary.get("core_transitions_cg")
    crossings = f"{n_cg} CG / {n_aa} AA crossings"
    if value is not None and np.isfinite(value):
        return name, value, f"{_ratio_verdict(value)}; {crossings}"
    aa_tau, bound = summary.get("core_relaxation_aa_ps"), summary.get("core_relaxation_cg_bound_ps")
    if aa_tau is None or not np.isfinite(aa_tau) or aa_tau <= 0:
        return name, None, f"undefined: too few AA crossings ({crossings})"
    if bound is None or not np.isfinite(bound):
        return name, None, f"undefined ({crossings}; the CG did not stay in both cores: simulate it longer)"
    lower = bound / aa_tau
    if lower > 1.0 + RATIO_TOLERANCE:
        return name, lower, (f"too slow (at least {lower:.2g}x: {crossings}; CG relaxation >= {bound:.4g} ps, "
                             f"AA {aa_tau:.4g} ps)")
    return name, None, (f"undefined: {crossings}, and the CG run is too short to bound its relaxation "
                        f"(>= {bound:.4g} ps, AA {aa_tau:.4g} ps); simulate the CG model longer")


def _memory_row(summary: dict):
    """Memory ratio of the psi switching (indicator correlation time over the counted relaxation time), CG beside
    AA; None without both. Where they differ by more than the ratio tolerance the MSM slowest timescale and the
    psi-core relaxation time cannot both match (docs/analysis.md)."""
    aa, cg = summary.get("core_memory_ratio_aa"), summary.get("core_memory_ratio_cg")
    if aa is None or cg is None or not (np.isfinite(aa) and np.isfinite(cg)) or aa <= 0:
        return None
    verdict = f"AA {aa:.2g}, CG {cg:.2g} (1: two-state Markov switching)"
    if abs(cg / aa - 1.0) > RATIO_TOLERANCE:
        verdict += ("; they differ, so the MSM slowest timescale and the psi-core relaxation time cannot both "
                    "match: a model that matches one is off on the other by about their ratio")
    return "psi switching memory ratio, CG", cg, verdict


def _js_verdict(value) -> str:
    if value is None:
        return "undefined"
    return "close" if value < JS_CLOSE else "fair" if value < JS_FAIR else "differs"


def _ratio_verdict(value, above: str = "too slow") -> str:
    """Verdict on a CG/AA ratio; ``above`` names a ratio > 1 (a longer time is "too slow", a larger
    diffusion coefficient "too fast")."""
    if value is None or not np.isfinite(value) or value <= 0:
        return "undefined"
    if abs(value - 1.0) <= RATIO_TOLERANCE:
        return "matches"
    below = "too fast" if above == "too slow" else "too slow"
    return f"{above if value > 1 else below} ({value:.2g}x)"


def render_markdown(metrics: dict) -> str:
    """The text of ``report.md`` for the result of :func:`write_report`."""
    labels, cg, baseline = metrics["labels"], metrics["cg"], metrics["baseline"]
    info = cg["info"]
    lines = ["# CG model versus mapped AA", "",
             f"- {labels['aa']}: `{Path(metrics['files']['aa']).name}` ({info['n_frames_aa']} frames, "
             f"{info['n_trajectories_aa']} trajectory(ies))",
             f"- {labels['cg']}: `{Path(metrics['files']['cg']).name}` ({info['n_frames_cg']} frames, "
             f"{info['n_trajectories_cg']} trajectory(ies))"]
    if baseline is not None:
        lines.append(f"- {labels['baseline']}: `{Path(metrics['files']['baseline']).name}` "
                     f"({baseline['info']['n_frames_cg']} frames, "
                     f"{baseline['info']['n_trajectories_cg']} trajectory(ies))")
    lines += [f"- {info['n_beads']} beads, frame interval {info['frame_interval_ps']:g} ps, "
              f"T = {info['temperature_k']:g} K, collective variables: {', '.join(info['cv_names'])}", "",
              "## Headline metrics", "",
              f"JS divergence (nats, max log 2 = 0.693): < {JS_CLOSE} close, < {JS_FAIR} fair. "
              f"Ratios CG/AA: within {RATIO_TOLERANCE:.0%} of 1 matches.", ""]
    header = f"| metric | {labels['cg']} | verdict |"
    rule = "|---|---|---|"
    base_rows = verdicts(baseline) if baseline is not None else None
    if base_rows is not None:
        header += f" {labels['baseline']} | verdict |"
        rule += "---|---|"
    lines += [header, rule]
    for k, (name, value, verdict) in enumerate(verdicts(cg)):
        row = f"| {name} | {_fmt(value)} | {verdict} |"
        if base_rows is not None and k < len(base_rows):
            row += f" {_fmt(base_rows[k][1])} | {base_rows[k][2]} |"
        lines.append(row)
    lines += ["", "## Figures", ""]
    captions = {"fes.png": "Free energy surfaces on shared bins and colour scale (kJ/mol); blank = never visited.",
                "timescales.png": "MSM implied timescales vs lag (bootstrap 16-84% bars); grey: timescale = lag.",
                "msd.png": "Mean-squared displacement of the centre of mass and of the beads.",
                "acf.png": "Normalised autocorrelation functions of the collective variables.",
                "bonds.png": "Bond-length distributions on the CG bond graph."}
    for name in FIGURES:
        lines += [f"![{name}]({name})", "", captions[name], ""]
    if metrics.get("training"):
        from .curves import training_markdown

        lines += training_markdown(metrics["training"], labels)
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


# ----------------------------------------------------------------------------------------------- figures

def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    """Write ``fig`` as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    pyplot().close(fig)


def _series(runs: dict):
    """(key, metrics, side) for AA (taken from the CG comparison), CG and the baseline when present."""
    yield "aa", runs["cg"], "aa"
    yield "cg", runs["cg"], "cg"
    if runs.get("baseline") is not None:
        yield "baseline", runs["baseline"], "cg"


def plot_fes(runs: dict, labels: dict, path) -> None:
    """Free energy surfaces AA | CG | baseline with one colour scale (2-D), or overlaid 1-D profiles."""
    plt = pyplot()
    fes = runs["cg"]["fes"]
    units = runs["cg"]["info"]["cv_units"]
    names = [f"{n} ({units})" if units != "1" else n for n in fes["cv_names"]]
    if "aa_2d" not in fes:
        fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
        centres = _centres(fes["edges"][0])
        for key, metrics, side in _series(runs):
            ax.plot(centres, _nan(metrics["fes"][f"{side}_1d"][0]), label=labels[key], **_STYLES[key])
        ax.set(xlabel=names[0], ylabel="F (kJ/mol)",
               title=f"Free energy profile ({labels['cg']}: JS = {_fmt(fes['js_1d'][0])})")
        ax.legend()
        save_figure(fig, path)
        return
    panels = [(labels[key], m["fes"][f"{side}_2d"], m["fes"].get("js_2d") if key != "aa" else None)
              for key, m, side in _series(runs)]
    plot_fes_panels(panels, fes["edges"], names, path)


def plot_fes_panels(panels, edges, axis_names, path) -> None:
    """2-D free energy surfaces side by side on one colour scale (capped at the 99th percentile or 30 kJ/mol).

    Parameters
    ----------
    panels : sequence of (str, array (n_x, n_y) kJ/mol, float or None)
        Title, surface (NaN where never visited) and JS divergence to show in the title (None: none).
    edges : sequence of two arrays
        Bin edges of the two CVs.
    axis_names : sequence of two str
    path : str or Path
        PNG written.
    """
    plt = pyplot()
    surfaces = [_nan(surface) for _, surface, _ in panels]
    finite = np.concatenate([f[np.isfinite(f)] for f in surfaces])
    vmax = float(min(np.percentile(finite, 99), 30.0)) if finite.size else 1.0
    ex, ey = (np.asarray(e, dtype=float) for e in edges[:2])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1, 4), layout="constrained",
                             sharex=True, sharey=True, squeeze=False)
    for ax, (label, _, js), surface in zip(axes[0], panels, surfaces):
        mesh = ax.pcolormesh(ex, ey, surface.T, cmap="viridis", vmin=0.0, vmax=vmax, shading="flat")
        ax.set_title(label if js is None else f"{label} (JS = {js:.3f})")
        ax.set_xlabel(axis_names[0])
    axes[0, 0].set_ylabel(axis_names[1])
    fig.colorbar(mesh, ax=axes[0, :].tolist(), label="F (kJ/mol)", shrink=0.9)
    save_figure(fig, path)


def plot_timescales(runs: dict, labels: dict, path) -> None:
    """Implied timescales vs lag, log scale, with bootstrap error bars and the chosen lag marked.

    Colour = process (slowest first), line style = model (AA solid, CG dashed, baseline dotted).
    """
    plt = pyplot()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lags, n_processes = None, 0
    for key, metrics, side in _series(runs):
        its = metrics["its"][side]
        lags = np.asarray(its["lags_ps"], dtype=float)
        values = _nan(its["timescales_ps"])
        lower, upper = _nan(its["lower_ps"]), _nan(its["upper_ps"])
        n_processes = values.shape[1]
        for k in range(n_processes):
            err = np.stack([np.clip(values[:, k] - lower[:, k], 0, None),
                            np.clip(upper[:, k] - values[:, k], 0, None)])
            ax.errorbar(lags, values[:, k], yerr=np.nan_to_num(err), color=colours[k % len(colours)],
                        linestyle=_STYLES[key]["linestyle"], marker="o", markersize=3, capsize=2)
    ax.fill_between(lags, lags.min() * 0.5, lags, color="0.88")
    lag_ps = runs["cg"]["its"]["lag_ps"]
    ax.axvline(lag_ps, color="0.4", linewidth=1)
    handles = [Line2D([], [], color="black", linestyle=_STYLES[key]["linestyle"], label=labels[key])
               for key, _, _ in _series(runs)]
    handles += [Line2D([], [], color=colours[k % len(colours)], marker="o", label=f"process {k + 1}")
                for k in range(n_processes)]
    handles += [Line2D([], [], color="0.4", label=f"lag for ratios ({lag_ps:g} ps)"),
                plt.Rectangle((0, 0), 1, 1, color="0.88", label="timescale < lag")]
    ax.set(xscale="log", yscale="log", xlabel="lag time (ps)", ylabel="implied timescale (ps)",
           title=f"MSM implied timescales ({runs['cg']['its']['n_states']} states)")
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, path)


def plot_msd(runs: dict, labels: dict, path) -> None:
    """MSD of the centre of mass and bead-averaged MSD with the molecule's COM removed, vs time."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for key, metrics, side in _series(runs):
        msd = metrics["msd"][side]
        time = np.asarray(msd["time_ps"])
        d_com = msd["diffusion_com_nm2_per_ps"]
        axes[0].plot(time, _nan(msd["msd_com_nm2"]), label=f"{labels[key]} (D = {_fmt(d_com)} nm²/ps)",
                     **_STYLES[key])
        axes[1].plot(time, _nan(msd["msd_internal_nm2"]).mean(axis=1), label=labels[key], **_STYLES[key])
    axes[0].set(xlabel="time (ps)", ylabel="MSD (nm²)", title="Centre of mass")
    axes[1].set(xlabel="time (ps)", ylabel="MSD (nm²)", title="Beads relative to the COM (bead mean)")
    for ax in axes:
        ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_acf(runs: dict, labels: dict, path) -> None:
    """Normalised autocorrelation functions of the collective variables, one panel per CV."""
    plt = pyplot()
    names = runs["cg"]["info"]["cv_names"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.8), layout="constrained", squeeze=False)
    for key, metrics, side in _series(runs):
        acf = metrics["acf"][side]
        for k, ax in enumerate(axes[0]):
            tau = acf["integrated_time_ps"][k]
            ax.plot(acf["time_ps"], _nan(acf["acf"][k]), label=f"{labels[key]} (τ = {_fmt(tau)} ps)",
                    **_STYLES[key])
    for k, ax in enumerate(axes[0]):
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.set(xlabel="time (ps)", ylabel="ACF", title=f"Autocorrelation of {names[k]}")
        ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_bonds(runs: dict, labels: dict, path, max_panels: int = 12) -> None:
    """Bond-length densities of AA, CG and the baseline, one panel per bond (first ``max_panels``)."""
    plt = pyplot()
    bonds = runs["cg"]["bonds"]
    n = min(len(bonds["bonds"]), max_panels)
    if n == 0:
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, "no bonds in the CG model", ha="center", va="center")
        ax.set_axis_off()
        save_figure(fig, path)
        return
    ncols = min(n, 4)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows), layout="constrained", squeeze=False)
    names = runs["cg"]["info"].get("bead_names") or [str(i) for i in range(runs["cg"]["info"]["n_beads"])]
    for key, metrics, side in _series(runs):
        data = metrics["bonds"]
        for k in range(n):
            centres = _centres(data["bond_edges_nm"][k])
            axes.flat[k].plot(centres, data["bond_density"][side][k], label=labels[key], **_STYLES[key])
    for k in range(n):
        i, j = bonds["bonds"][k]
        axes.flat[k].set(xlabel="length (nm)", ylabel="density (1/nm)",
                         title=f"{names[i]}({i})–{names[j]}({j})  JS={_fmt(bonds['bond_js'][k])}")
        axes.flat[k].title.set_fontsize(9)
        axes.flat[k].ticklabel_format(useOffset=False)
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    axes.flat[0].legend(fontsize=7)
    save_figure(fig, path)


def plot_profiles(profiles: dict, cv_names, path, styles: Optional[dict] = None) -> None:
    """1-D free energies along each CV (solid) and binned energy contributions (dashed), one panel per CV.

    Parameters
    ----------
    profiles : dict
        :func:`openmm_dynmatch.profiles.free_energy_profiles` output (arrays or JSON lists).
    cv_names : sequence of str
    path : str or Path
        PNG written.
    styles : dict of label -> matplotlib keyword arguments, optional
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(cv_names), figsize=(5.2 * len(cv_names), 3.9), layout="constrained",
                             squeeze=False)
    styles = styles or {}
    for ax, name in zip(axes[0], cv_names):
        entry = profiles[name]
        centres = _centres(entry["edges"])
        for label, curve in entry["free_energy"].items():
            ax.plot(centres, _nan(curve), label=f"F: {label}", **styles.get(label, {}))
        for label, curve in entry["mean_energy"].items():
            ax.plot(centres, _nan(curve), linestyle="--", label=f"<U>: {label}", **styles.get(label, {}))
        ax.set(xlabel=f"{name} (rad)", ylabel="kJ/mol (minimum 0)", xlim=(-np.pi, np.pi), ylim=(0, 45))
        ax.set_title(f"along {name}")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path)


def _centres(edges) -> np.ndarray:
    edges = np.asarray(edges, dtype=float)
    return 0.5 * (edges[1:] + edges[:-1])


def _nan(values) -> np.ndarray:
    """A JSON list (None for missing) as a float array with NaN."""
    return np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float) \
        if len(values) and isinstance(values[0], (list, tuple)) else \
        np.array([np.nan if v is None else v for v in values], dtype=float)

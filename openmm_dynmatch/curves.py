"""Training curves of a run directory: the stage logs of force matching / relative entropy and ``log.csv``.

:func:`plot_training_curves` draws what the run directory holds into one PNG: per force-matching or
relative-entropy stage (``stage<i>_<objective>.csv``) the training and validation force loss against the
iteration on a log scale (and the relative-entropy surrogate), and for dynamic matching (``log.csv``) the
classifier's accuracy and AUC, the friction, the reward and the gradient signal-to-noise ratio.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Optional

import numpy as np

_STAGE = re.compile(r"^stage(\d+)_([a-z_]+)\.csv$")
_NAMES = {"force_matching": "force matching", "relative_entropy": "relative entropy"}


def read_log(path, as_rows: bool = False):
    """Read a CSV training log; numeric cells become floats, empty cells NaN, other cells stay strings.

    Parameters
    ----------
    path : str or Path
    as_rows : bool
        Return a list of row dicts instead of columns.

    Returns
    -------
    dict of str to np.ndarray, or list of dict
        Columns (float arrays where every cell is numeric or empty, else object arrays) or rows.
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = [{k: _cell(v) for k, v in row.items()} for row in reader]
    if as_rows:
        return rows
    columns = {}
    for name in fields:
        values = [row.get(name, math.nan) for row in rows]
        numeric = all(isinstance(v, float) for v in values)
        columns[name] = np.array(values, dtype=float if numeric else object)
    return columns


def _cell(value):
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except ValueError:
        return value


def stage_logs(run_dir) -> list:
    """``(index, objective, path)`` of every stage log in ``run_dir``, in stage order."""
    found = []
    for path in Path(run_dir).glob("stage*_*.csv"):
        match = _STAGE.match(path.name)
        if match:
            found.append((int(match.group(1)), match.group(2), path))
    return sorted(found)


def plot_training_curves(run_dir, path, title: Optional[str] = None) -> Path:
    """Draw the training curves of ``run_dir`` into the PNG ``path`` (written atomically).

    Parameters
    ----------
    run_dir : str or Path
        A run directory (:func:`openmm_dynmatch.runs.run_training`).
    path : str or Path
        The PNG to write.
    title : str, optional
        Figure title (default: the run directory's name).

    Returns
    -------
    Path
        ``path``. A run without logs gets a figure that says so.
    """
    from openmm_dynmatch.report import pyplot, save_figure

    plt = pyplot()
    run_dir = Path(run_dir)
    panels = []
    for index, objective, log_path in stage_logs(run_dir):
        panels += _stage_panels(index, objective, read_log(log_path))
    if (run_dir / "log.csv").exists():
        panels += _dynamic_matching_panels(read_log(run_dir / "log.csv"))
    ncols = min(max(len(panels), 1), 3)
    nrows = max(int(math.ceil(len(panels) / ncols)), 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), layout="constrained",
                             squeeze=False)
    for ax, draw in zip(axes.flat, panels):
        draw(ax)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no training logs in this run directory", ha="center", va="center")
    fig.suptitle(title if title is not None else run_dir.name)
    save_figure(fig, path)
    return Path(path)


def _finite(values) -> bool:
    return values is not None and np.isfinite(np.asarray(values, dtype=float)).any()


def _stage_panels(index: int, objective: str, log: dict) -> list:
    """Panels of one stage log: force losses (log scale) and, for relative entropy, its surrogate."""
    name = f"stage {index}: {_NAMES.get(objective, objective)}"
    it = log.get("iteration", np.array([]))
    panels = []
    train, validation = log.get("train_force_loss"), log.get("validation_force_loss")
    if _finite(train) or _finite(validation):
        def losses(ax):
            if objective == "force_matching" and _finite(log.get("batch_loss")):
                ax.plot(it, log["batch_loss"], color="0.7", linewidth=1, label="minibatches (mean)")
            if _finite(train):
                ax.plot(it, train, color="tab:blue", marker=".", label="training frames")
            if _finite(validation):
                ax.plot(it, validation, color="tab:orange", marker=".", linestyle="--", label="validation frames")
                best = int(np.nanargmin(validation))
                ax.axvline(it[best], color="tab:orange", linewidth=0.8, alpha=0.6)
                ax.annotate(f"best {validation[best]:.4g} at {it[best]:g}", (it[best], validation[best]),
                            textcoords="offset points", xytext=(4, 6), fontsize=7)
            ax.set(yscale="log", xlabel="iteration", ylabel="force loss ((kJ/mol/nm)²)", title=name)
            ax.legend(fontsize=7)
        panels.append(losses)
    if objective == "relative_entropy" and _finite(log.get("batch_loss")):
        def surrogate(ax):
            ax.plot(it, log["batch_loss"], color="tab:green", marker=".")
            ax.set(xlabel="iteration", ylabel="β (⟨U⟩_AA − ⟨U⟩_CG)", title=f"{name}: surrogate")
        panels.append(surrogate)
    return panels


def _smooth(values: np.ndarray) -> np.ndarray:
    """Running mean over about a twentieth of the series (NaN ignored)."""
    width = max(len(values) // 20, 1)
    if width == 1:
        return values
    filled = np.where(np.isfinite(values), values, 0.0)
    counts = np.convolve(np.isfinite(values).astype(float), np.ones(width), mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.convolve(filled, np.ones(width), mode="same") / counts


def _dynamic_matching_panels(log: dict) -> list:
    """Panels of ``log.csv``: classifier accuracy/AUC, friction, reward and gradient SNR (those present)."""
    it = log.get("iteration", np.array([]))
    phase = log.get("phase")
    warmup_end = None
    if phase is not None and (phase == "warmup").any():
        warmup_end = float(it[phase == "warmup"].max()) + 0.5

    def shade(ax):
        if warmup_end is not None:
            ax.axvspan(it.min() - 0.5, warmup_end, color="0.92", label="classifier warm-up")

    panels = []
    if _finite(log.get("classifier_accuracy")):
        def classifier(ax):
            shade(ax)
            for key, colour in (("classifier_accuracy", "tab:blue"), ("classifier_auc", "tab:purple")):
                if _finite(log.get(key)):
                    ax.plot(it, log[key], color=colour, alpha=0.3, linewidth=0.8)
                    ax.plot(it, _smooth(log[key]), color=colour, label=key.replace("classifier_", ""))
            ax.axhline(0.5, color="0.4", linewidth=0.8)
            ax.set(xlabel="iteration", ylabel="on the training batch", title="dynamic matching: classifier")
            ax.legend(fontsize=7)
        panels.append(classifier)
    friction = sorted(k for k in log if k.startswith("friction_per_ps") and _finite(log[k]))
    if friction:
        def frictions(ax):
            shade(ax)
            for key in friction:
                ax.plot(it, log[key], label=key.replace("friction_per_ps", "friction"))
            values = np.concatenate([log[key][np.isfinite(log[key])] for key in friction])
            wide = values.min() > 0 and values.max() > 3 * values.min()  # log scale only over a wide range
            ax.set(yscale="log" if wide else "linear", xlabel="iteration", ylabel="friction (1/ps)",
                   title="dynamic matching: friction")
            ax.legend(fontsize=7)
        panels.append(frictions)
    if _finite(log.get("reward_mean")):
        def reward(ax):
            shade(ax)
            mean = log["reward_mean"]
            if _finite(log.get("reward_std")):
                ax.fill_between(it, mean - log["reward_std"], mean + log["reward_std"], color="tab:red", alpha=0.15)
            ax.plot(it, mean, color="tab:red")
            ax.set(xlabel="iteration", ylabel="reward (mean ± sd)", title="dynamic matching: reward")
        panels.append(reward)
    if _finite(log.get("gradient_snr")):
        def snr(ax):
            values = log["gradient_snr"]
            keep = np.isfinite(values) & (values > 0)
            ax.plot(it[keep], values[keep], color="tab:brown", marker=".", linestyle="-")
            ax.set(yscale="log", xlabel="iteration", ylabel="gradient SNR", title="dynamic matching: gradient SNR")
        panels.append(snr)
    return panels


def report_training(run_dirs: dict, labels: dict, out_dir) -> dict:
    """Training curves of the report's models: ``training_<key>.png`` in ``out_dir`` and the headline numbers
    of each run's ``summary.json``.

    Parameters
    ----------
    run_dirs : dict
        ``{"cg": run_dir, "baseline": run_dir}`` (either key may be left out).
    labels : dict
        Legend names of the report (``"cg"``, ``"baseline"``).
    out_dir : str or Path
        The report folder.

    Returns
    -------
    dict
        Per key: ``run_dir``, ``figure`` (file name in ``out_dir``) and ``summary`` (objective, stages,
        validation force loss, held-out AUC; empty when the run has no ``summary.json``).
    """
    import json

    unknown = sorted(set(run_dirs) - {"cg", "baseline"})
    if unknown:
        raise ValueError(f"run_dirs has unknown keys {unknown}; available: ['baseline', 'cg']")
    out = {}
    for key, run_dir in run_dirs.items():
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ValueError(f"run_dirs['{key}'] = {str(run_dir)!r} is not a directory")
        figure = f"training_{key}.png"
        plot_training_curves(run_dir, Path(out_dir) / figure, title=f"{labels[key]}: training")
        summary_path = run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        out[key] = {"run_dir": str(run_dir), "figure": figure,
                    "summary": {k: summary.get(k) for k in ("objective", "stages", "validation_force_loss",
                                                            "heldout_auc", "friction_per_ps") if k in summary}}
    return out


def training_markdown(training: dict, labels: dict) -> list:
    """Lines of the report's "Training" section: a table per model and its curves."""
    lines = ["## Training", "",
             "Force loss in (kJ/mol/nm)²; validation = frames of the held-out time blocks. Held-out AUC: a fresh "
             "classifier telling AA windows from the model's (0.5 = indistinguishable).", "",
             "| model | objective | stages: stopped at / iterations, best validation force loss (iteration) | "
             "final validation force loss | held-out AUC before → after |", "|---|---|---|---|---|"]
    for key, entry in training.items():
        summary = entry["summary"]
        stages = "; ".join(
            f"{_NAMES.get(s['objective'], s['objective'])}: {_num(s.get('stopped_at_iteration'))} / "
            f"{s['iterations']}, {_num(s.get('best_validation_force_loss'))} ({_num(s.get('best_iteration'))})"
            for s in summary.get("stages") or []) or "none"
        auc = summary.get("heldout_auc") or {}
        aucs = " → ".join(_num((auc.get(k) or {}).get("auc")) for k in ("before", "after") if k in auc) or "n/a"
        lines.append(f"| {labels[key]} | {summary.get('objective', 'n/a')} | {stages} | "
                     f"{_num(summary.get('validation_force_loss'))} | {aucs} |")
    lines.append("")
    for key, entry in training.items():
        lines += [f"![{entry['figure']}]({entry['figure']})", "",
                  f"Training curves of {labels[key]} (`{Path(entry['run_dir']).name}`).", ""]
    return lines


def _num(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)

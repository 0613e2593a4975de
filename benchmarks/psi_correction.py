"""Is force matching's rate spread the helical basin's free energy? Correct it along psi and look again.

``benchmarks/fm_spread.py`` found the force-matched models of one AA data set 1.6-2.2x apart in rate between
training seeds, and the rate to follow the extended - helical free energy of each model (correlation about 0.9
with the log of the MSM ratio over seeds) rather than the barriers between the psi cores. This script tests that
reading: every force-matched model of an ``fm_spread.py`` work directory gets one Boltzmann-inversion step along
psi toward the training data,

    U'(x) = U(x) + kT ln(P_model(psi) / P_data(psi)),

with the log-ratio fitted by a Fourier series of order ``--order`` in psi (weighted least squares over the bins
that both hold at least ``--min-count`` frames, :func:`openmm_dynmatch.correction.correction_coefficients`;
``P_model`` from the model's existing productions at 10/ps). The corrected model is the potential with the series
as the prior's dihedral correction (what ``train.correction_dihedrals`` fits during training, from its own runs).
The corrected model is exported, produced and judged like the uncorrected one (``science.py``'s production and
comparison against ``--reference``), so the two rows differ by the correction only. If the correction brings
every model's extended - helical free energy to the data's and their rates together, the spread was the basin's;
the data's own free energy (and so its rate) is then what the models inherit.

Per seed: the fitted coefficients, the extended - helical free energy of data, model and corrected model, and
both models' MSM and psi-core ratios over the reference; over seeds: mean, SD and max / min of each ratio. A
figure of the ratios before and after, per seed, is written beside the JSON.

Usage (the work directory and recipe of an ``fm_spread.py`` run; its productions are reused)::

    OMP_NUM_THREADS=1 python benchmarks/psi_correction.py --data WORK0/aa_mapped.h5 --reference REF/aa_mapped.h5 \\
        --runs v1s --seeds 0 1 2 3 --out results/psi_correction_annealed.json
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from openmm_dynmatch import trajio
from openmm_dynmatch.analysis import to_jsonable
from openmm_dynmatch.correction import correction_coefficients, resolve_dihedrals, with_corrections
from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.models.potential import load_potential
from openmm_dynmatch.openmm.export import export, load_metadata
from openmm_dynmatch.report import pyplot, save_figure

from fm_spread import RATIOS, LABELS, spread  # benchmarks/ on the path
from science import (DEFAULT, DEFAULT_PRODUCTION_SEEDS, backbone_cvs, extended_minus_helical, model_metrics,
                     produce_model, production_angles)
from stages import StageClock


def one_seed(data, reference, runs: Path, seed: int, order: int, min_count: int, productions: int,
             progress: bool) -> dict:
    """Correct the force-matched model of training seed ``seed`` in ``runs``, produce and judge both; the row."""
    clock = StageClock(runs)
    summary = json.loads((runs / f"run_fm_seed{seed}" / "summary.json").read_text())
    label = f"fm_seed{seed}"
    files = produce_model(label, summary, data.path, runs, DEFAULT, seed, clock, progress, productions)
    temperature = data.metadata["temperature_k"]
    data_angles = backbone_cvs(data.trajectory.positions, data.metadata)
    model_angles = production_angles(files, data.metadata)
    coefficients = correction_coefficients(model_angles[:, 1], data_angles[:, 1], temperature, order, min_count)
    corrected_dir = runs / f"psi_corrected_order{order}_seed{seed}"
    model_path = corrected_dir / "model.pt"
    if not model_path.exists():
        corrected_dir.mkdir(parents=True, exist_ok=True)
        potential, _ = load_potential(runs / f"run_fm_seed{seed}" / "potential.pt")
        corrected = with_corrections(potential, resolve_dihedrals(["psi"], data.metadata), order)
        corrected.prior.add_correction([coefficients[1::2]], [coefficients[2::2]])
        export(corrected.eval(), model_path, load_metadata(summary["model"]))
    corrected_summary = dict(summary, model=str(model_path))
    corrected_files = produce_model(f"psi_corrected_order{order}_seed{seed}", corrected_summary, data.path, runs,
                                    DEFAULT, seed, clock, progress, productions)
    before = model_metrics(reference, files, summary, seed)
    after = model_metrics(reference, corrected_files, corrected_summary, seed)
    corrected_angles = production_angles(corrected_files, data.metadata)
    row = {"seed": seed, "coefficients_kj_per_mol": coefficients.tolist(), "timings_s": clock.this_run(),
           "extended_minus_helical_kj_per_mol": {
               "data": extended_minus_helical(data_angles, temperature),
               "model": extended_minus_helical(model_angles, temperature),
               "corrected": extended_minus_helical(corrected_angles, temperature)}}
    for key in RATIOS + ("js_fes_2d",):
        row[key] = {"model": before.get(key), "corrected": after.get(key)}
        if key in RATIOS:
            row[f"{key}_sem"] = {"model": before.get(f"{key}_sem"), "corrected": after.get(f"{key}_sem")}
    return to_jsonable(row)


def plot(rows: list, path: Path) -> None:
    """Both ratios of every seed before and after the correction; 1 is the reference."""
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.5), sharey=True, layout="constrained")
    seeds = np.array([r["seed"] for r in rows], dtype=float)
    for ax, key in zip(axes, RATIOS):
        for k, (which, marker) in enumerate((("model", "o"), ("corrected", "s"))):
            ax.errorbar(seeds + 0.1 * (k - 0.5), [r[key][which] or np.nan for r in rows],
                        yerr=[r[f"{key}_sem"][which] or 0.0 for r in rows], fmt=marker, capsize=3,
                        label="force matching" if which == "model" else "corrected along psi")
        ax.axhline(1.0, color="black", linewidth=1)
        ax.axhspan(0.75, 1.25, color="0.9", zorder=0)
        ax.set_xlabel("force-matching training seed")
        ax.set_title(LABELS[key], fontsize=9)
    axes[0].set_ylabel("CG / reference AA")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


class _Data:
    """The training data: path, trajectory and metadata."""

    def __init__(self, path: Path):
        self.path, self.trajectory = path, trajio.load(path)
        self.metadata = self.trajectory.metadata


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the mapped AA data the models were trained on")
    parser.add_argument("--reference", required=True, help="mapped AA data to judge the models against")
    parser.add_argument("--runs", required=True, help="work directory of an fm_spread.py run (run_fm_seedK/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds to correct")
    parser.add_argument("--order", type=int, default=3, help="order of the Fourier series in psi (default 3)")
    parser.add_argument("--min-count", type=int, default=20, help="frames a psi bin needs in both samples")
    parser.add_argument("--productions", type=int, default=DEFAULT_PRODUCTION_SEEDS,
                        help=f"productions per model (default {DEFAULT_PRODUCTION_SEEDS})")
    parser.add_argument("--out", required=True, help="JSON result; the figure is written beside it")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    for name in ("data", "reference"):
        if not Path(getattr(args, name)).is_file():
            parser.error(f"--{name}: no such file {getattr(args, name)}")
    missing = [s for s in args.seeds if not (runs / f"run_fm_seed{s}" / "summary.json").is_file()]
    if missing:
        parser.error(f"--runs {runs}: no trained force-matching run for seeds {missing} (run_fm_seedK/summary.json)")
    if args.order < 1 or args.min_count < 1 or args.productions < 1:
        parser.error(f"--order, --min-count and --productions must be positive, got {args.order}, "
                     f"{args.min_count}, {args.productions}")
    data, reference = _Data(Path(args.data)), trajio.load(args.reference)
    rows = [one_seed(data, reference, runs, seed, args.order, args.min_count, args.productions,
                     not args.no_progress) for seed in args.seeds]
    out = Path(args.out)
    result = {"benchmark": "psi_correction", "data": Path(args.data).name, "runs": runs.name,
              "order": args.order, "min_count": args.min_count, "productions": args.productions, "seeds": rows,
              "spread": {f"{key}_{which}": spread([r[key][which] for r in rows])
                         for key in RATIOS + ("js_fes_2d",) for which in ("model", "corrected")}}
    write_json(out, result)
    plot(rows, out.with_suffix(".png"))
    for key in RATIOS:
        for which in ("model", "corrected"):
            s = result["spread"][f"{key}_{which}"]
            print(f"{LABELS[key]}, {which}: " + ", ".join(f"{r[key][which]:.2f}" for r in rows)
                  + f" | mean {s['mean']:.2f}, max/min {s['max_over_min']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

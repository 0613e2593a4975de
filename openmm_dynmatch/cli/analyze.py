"""Compare a CG model's trajectories with mapped AA data: FES, timescales, MSD, ACF; writes a report.

Example: ``dynmatch analyze --aa aa_mapped.h5 --cg cg.h5 --cg-baseline fm.h5 --out report/``. Both files must
hold the same beads at the same frame interval (use ``--stride`` to thin them). Writes ``metrics.json``, PNG
figures and ``report.md`` into ``--out``; ``--cg-run`` / ``--baseline-run`` add the training curves of the
models' run directories. A ``--out`` folder that is not empty is written into only with ``--overwrite``.
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    from openmm_dynmatch.cli.outputs import add_overwrite_argument

    parser.add_argument("--aa", required=True, metavar="FILE", help="mapped AA trajectory (HDF5)")
    parser.add_argument("--cg", required=True, metavar="FILE", help="CG model trajectory (HDF5)")
    parser.add_argument("--cg-baseline", default=None, metavar="FILE",
                        help="trajectory of a baseline CG model (e.g. force matching) for comparison")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder of the report")
    parser.add_argument("--cg-run", default=None, metavar="DIR",
                        help="training run directory of the CG model: the report adds its training curves")
    parser.add_argument("--baseline-run", default=None, metavar="DIR",
                        help="training run directory of the baseline model (training curves in the report)")
    parser.add_argument("--lag", type=int, nargs="+", default=None, metavar="FRAMES",
                        help="MSM lag times in frames (default: about 8 lags up to a tenth of the data)")
    parser.add_argument("--ratio-lag-ps", type=float, default=None, metavar="PS",
                        help="lag (ps) at which the CG/AA timescale ratio is reported")
    parser.add_argument("--clusters", type=int, default=20, help="k-means clusters of the MSM (default 20)")
    parser.add_argument("--bootstrap", type=int, default=20, help="bootstrap samples for error bars (default 20)")
    parser.add_argument("--bins", type=int, default=60, help="histogram bins per axis (default 60)")
    parser.add_argument("--stride", type=int, default=1, help="load every n-th frame (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of clustering and bootstrap (default 0)")
    parser.add_argument("--label-cg", default="CG", help="legend name of the CG model")
    parser.add_argument("--label-baseline", default="baseline", help="legend name of the baseline")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_overwrite_argument(parser, "the report in --out")


def run(args) -> int:
    from pathlib import Path

    from openmm_dynmatch.cli.outputs import refuse_existing
    from openmm_dynmatch.report import verdicts, write_report

    refuse_existing([args.out], args.overwrite)
    run_dirs = {key: value for key, value in (("cg", args.cg_run), ("baseline", args.baseline_run)) if value}
    metrics = write_report(
        args.aa, args.cg, args.out, cg_baseline_path=args.cg_baseline,
        labels={"cg": args.label_cg, "baseline": args.label_baseline}, stride=args.stride, run_dirs=run_dirs,
        lags=args.lag, lag_ps=args.ratio_lag_ps, n_clusters=args.clusters, n_bootstrap=args.bootstrap,
        n_bins=args.bins, seed=args.seed, progress=not args.no_progress)
    print(f"report: {Path(args.out) / 'report.md'}")
    for key in ("cg", "baseline"):
        if metrics[key] is None:
            continue
        for name, value, verdict in verdicts(metrics[key]):
            shown = "n/a" if value is None else f"{value:.3g}"
            print(f"  {metrics['labels'][key]}: {name} = {shown} ({verdict})")
    return 0

"""Run the whole pipeline on alanine dipeptide in implicit solvent and write a report.

AA reference MD -> CG mapping -> prior fit -> force matching -> dynamic matching -> export -> OpenMM CG
production -> analysis report. --quick runs every stage at toy size (a few minutes).
"""


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="dynmatch_demo", help="output folder (default: dynmatch_demo)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every stage")
    parser.add_argument("--seed", type=int, default=0, help="seed of every stochastic stage")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from openmm_dynmatch.demo import run_demo

    result = run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    print(f"AA reference trajectory: {result['aa']}")
    print(f"mapped AA (CG resolution): {result['aa_mapped']}")
    for label, path in result["models"].items():
        print(f"{label.upper()} model for OpenMM: {path}  (friction {result['friction_per_ps'][label]:.3g} 1/ps)")
    for label, probes in result["heldout_auc"].items():
        shown = ", ".join(f"{stage} {numbers['auc']:.3f}" for stage, numbers in probes.items())
        if shown:
            print(f"{label.upper()} held-out classifier AUC (0.5 = indistinguishable from AA): {shown}")
    print(f"report: {result['report']}")
    for label, numbers in result["headline"].items():
        shown = ", ".join(f"{k} = {_fmt(v)}" for k, v in numbers.items())
        print(f"{label.upper()} vs AA: {shown}")
    print(f"wall time: {result['timings_s']['total_s']:.0f} s")
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"

"""Does science.py's dynamic matching find a friction it is given? Its own settings on Markovian known truth.

The data are the L2 teacher's (``recovery.py --case teacher``: a CG model of alanine dipeptide force-matched to
1 ns of AA data, simulated by OpenMM) at a known friction, ``--teacher-friction`` (default 4/ps: about what
dynamic matching learns on the AA data, so that the windows sit where they sit there in units of ``1/gamma``).
Each run is ``science.py``'s dynamic matching at its settings (``science.DEFAULT``: force matching to the data,
then the friction learning alone, the internal-motion classifier, windows of 4 frames), with the windows' frames
``frame_step`` saved frames (0.1 ps each) apart, from a start friction. The data are Markovian and in the model
class, so whatever a run misses is the game's, not memory's.

Reported per run: the learned friction and its error, the held-out AUC of a fresh classifier before and after,
the game's crn friction gradients in blocks of 10 friction updates (``best_response.game_blocks``) and
:func:`signal_edge`: how near the truth the classifiers still pushed the friction towards it. The figure shows
the friction against iteration and the blocks' gradients against friction over the truth.

    OMP_NUM_THREADS=1 python benchmarks/window_truth.py --work-dir window_truth_work --frame-steps 5 10 \\
        --out benchmarks/results/window_truth.json --plot benchmarks/results/window_truth.png
"""
import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from best_response import game_blocks  # benchmarks/ is on the path when this script runs
from friction_gradient import friction_log_axis
from openmm_dynmatch import trajio
from openmm_dynmatch.curves import read_log
from openmm_dynmatch.demo import QUICK, demo_config
from openmm_dynmatch.fileio import write_json
from recovery import TEACHER_QUICK, TeacherSettings, teacher_stages
from science import DEFAULT, setting_overrides, train_one
from stages import StageClock

#: Friction updates per block of the game's gradients.
BLOCK = 10
#: Ticks of the figure's friction-over-truth axis.
RATIO_TICKS = (0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5)
#: Standard errors by which a block's gradient must point to the truth to count as a push (:func:`signal_edge`).
PUSH_Z = 2.0


def signal_edge(blocks: list, truth: float, z: float = PUSH_Z) -> dict:
    """How near the truth the game's classifiers still pushed the friction towards it: on each side of
    ``truth``, the friction over the truth of the block (``best_response.game_blocks``) nearest to it whose mean
    gradient points to the truth by at least ``z`` standard errors (None for a side without one). The generator
    lowers the reward, so above the truth a positive gradient pushes the friction down, below it a negative one
    pushes it up."""
    above = [b["friction_per_ps"] / truth for b in blocks
             if b["friction_per_ps"] > truth and b["gradient"] >= z * b["gradient_se"]]
    below = [b["friction_per_ps"] / truth for b in blocks
             if b["friction_per_ps"] < truth and b["gradient"] <= -z * b["gradient_se"]]
    return {"above": min(above) if above else None, "below": max(below) if below else None, "z": z}


def run_label(start: float, demo_start: float) -> str:
    """``science.train_one``'s label of a dynamic-matching run from ``start`` (its plain ``dm`` from the demo's
    start friction)."""
    return "dm" if start == demo_start else f"dm_from_{start:g}"


def one_run(data: Path, work: Path, settings, frame_step: int, start: float, tag: str, truth: float, seed: int,
            progress: bool) -> dict:
    """One dynamic-matching run on the teacher's data (made where missing, in ``work/fs<frame_step>[_tag]``) and
    its summary row."""
    settings = replace(settings, frame_step=frame_step)
    demo_start = demo_config(data, settings, "dynamic_matching", seed).dynamics.friction_per_ps
    label = run_label(start, demo_start)
    folder = work / (f"fs{frame_step}" + (f"_{tag}" if tag else ""))
    folder.mkdir(parents=True, exist_ok=True)
    clock = StageClock(folder)
    summary = train_one(label, data, folder, settings, seed, clock, progress)
    run_dir = folder / f"run_{label}"
    log = read_log(run_dir / "log.csv")
    blocks = game_blocks(run_dir, 0, BLOCK)
    auc = summary.get("heldout_auc") or {}
    spacing = frame_step * trajio.read_metadata(data)["frame_interval_ps"]
    return {"frame_step": frame_step, "frame_spacing_ps": spacing, "spacing_times_truth": spacing * truth,
            "start_per_ps": start, "tag": tag, "run": str(run_dir.relative_to(work)),
            "friction_per_ps": summary["friction_per_ps"], "relative_error": summary["friction_per_ps"] / truth - 1,
            "heldout_auc_before": (auc.get("before") or {}).get("auc"),
            "heldout_auc_after": (auc.get("after") or {}).get("auc"),
            "signal_edge": signal_edge(blocks, truth), "blocks": blocks,
            "trace": {"iteration": [int(i) for i in log["iteration"]],
                      "friction_per_ps": [float(f) for f in log["friction_per_ps"]]},
            "train_s": clock.this_run().get(f"train_{label}_s")}


def plot(result: dict, out: Path) -> None:
    """Friction against iteration per run (the truth dotted), and each run's block gradients (+- 2 se) against
    friction over the truth."""
    from openmm_dynmatch.report import pyplot, save_figure
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    truth = result["teacher_friction_per_ps"]
    for k, row in enumerate(result["runs"]):
        name = (f"frames {row['frame_spacing_ps']:g} ps apart ({row['spacing_times_truth']:g}/gamma), "
                f"from {row['start_per_ps']:g}/ps" + (f", {row['tag']}" if row["tag"] else ""))
        left.plot(row["trace"]["iteration"], row["trace"]["friction_per_ps"], color=f"C{k}", label=name)
        ratio = [b["friction_per_ps"] / truth for b in row["blocks"]]
        right.errorbar(ratio, [b["gradient"] for b in row["blocks"]],
                       yerr=[2 * b["gradient_se"] for b in row["blocks"]], fmt="o", color=f"C{k}", capsize=2)
    left.axhline(truth, color="0.3", ls=":", label=f"truth {truth:g}/ps")
    left.set(xlabel="iteration", ylabel="friction (1/ps)")
    friction_log_axis(left.yaxis)
    left.legend(fontsize=7)
    right.axhline(0.0, color="0.5", lw=0.8)
    right.axvline(1.0, color="0.3", ls=":")
    right.set(xlabel=f"friction / truth (blocks of {BLOCK} updates)",
              ylabel="crn gradient of the reward (> 0 pushes down)")
    friction_log_axis(right.xaxis)
    ratios = [b["friction_per_ps"] / truth for row in result["runs"] for b in row["blocks"]] or [1.0]
    right.xaxis.set_ticks(RATIO_TICKS, labels=[f"{t:g}" for t in RATIO_TICKS])
    right.set_xlim(min(0.5, 0.9 * min(ratios)), max(3.0, 1.1 * max(ratios)))
    save_figure(fig, out)


def run(work: Path, frame_steps, starts, truth: float, seed: int = 0, overrides=None, tag: str = "",
        quick: bool = False, progress: bool = False) -> dict:
    """The teacher's stages (made where missing) and one run per frame step and start; returns the JSON document."""
    teacher = replace(TEACHER_QUICK if quick else TeacherSettings(), teacher_friction_per_ps=truth)
    settings = replace(QUICK, internal_motion=True) if quick else DEFAULT
    settings = replace(settings, **(overrides or {}))
    work.mkdir(parents=True, exist_ok=True)
    marker = work / "teacher_friction.json"
    made = json.loads(marker.read_text())["teacher_friction_per_ps"] if marker.exists() else truth
    if made != truth:
        raise SystemExit(f"--work-dir {work}: its teacher data were made at {made}/ps, not {truth}/ps; give another "
                         f"work directory")
    write_json(marker, {"teacher_friction_per_ps": truth})
    clock = StageClock(work)
    _, _, data, _ = teacher_stages(teacher, work, seed, clock, student=False)
    runs = [one_run(data, work, settings, fs, start, tag, truth, seed, progress)
            for fs in frame_steps for start in starts]
    return {"benchmark": "window_truth", "seed": seed, "teacher_friction_per_ps": truth,
            "settings": {k: v for k, v in vars(settings).items() if k != "config_overrides"},
            "overrides": dict(overrides or {}), "runs": runs, "timings_s": clock.this_run()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("window_truth_run"),
                        help="stage files (reused when present)")
    parser.add_argument("--teacher-friction", type=float, default=4.0, help="the data's friction (1/ps)")
    parser.add_argument("--frame-steps", type=int, nargs="+", default=[5, 10],
                        help="saved frames (0.1 ps) between a window's frames, one run each")
    parser.add_argument("--starts", type=float, nargs="+", default=[10.0],
                        help="start frictions (1/ps), one run each per frame step (default: the demo's 10/ps)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a field of science.py's settings (DemoSettings) for every run, e.g. "
                             "--set friction_optimizer=adam; give a --tag so that the runs get their own folders")
    parser.add_argument("--tag", default="", help="suffix of the runs' folders (fs<frame_step>_<tag>)")
    parser.add_argument("--quick", action="store_true", help="the small sizes of every stage (a smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--progress", action="store_true", help="progress bars of the trainings")
    parser.add_argument("--out", type=Path, default=Path("window_truth.json"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.teacher_friction <= 0 or min(args.starts) <= 0:
        parser.error(f"--teacher-friction and --starts must be positive frictions in 1/ps, got "
                     f"{args.teacher_friction} and {args.starts}")
    if min(args.frame_steps) < 1:
        parser.error(f"--frame-steps must be >= 1, got {args.frame_steps}")
    overrides = setting_overrides(args.set, DEFAULT, parser)
    if overrides and not args.tag:
        parser.error("--set changes the runs: give --tag so that they do not reuse the default runs' folders")
    torch.set_num_threads(args.threads)
    result = run(args.work_dir, args.frame_steps, args.starts, args.teacher_friction, args.seed, overrides,
                 args.tag, args.quick, args.progress)
    write_json(args.out, result)
    for row in result["runs"]:
        edge = row["signal_edge"]
        print(f"frames {row['frame_spacing_ps']:g} ps apart, from {row['start_per_ps']:g}/ps: "
              f"{row['friction_per_ps']:.3f}/ps ({100 * row['relative_error']:+.1f}%), held-out AUC "
              f"{row['heldout_auc_before']} -> {row['heldout_auc_after']}; pushed towards the truth down to "
              f"{edge['above']} x above, up to {edge['below']} x below", file=sys.stderr)
    if args.plot:
        plot(result, args.plot)
    return result


if __name__ == "__main__":
    main()

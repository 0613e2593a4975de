"""Speed of the window classifier: forward + backward (a training step's cost) on a batch of windows.

Target: <= 3 s for 256 windows of T = 8 frames and 10 beads with the default architecture on one CPU thread.
Also times the R1 penalty (forward, gradient with create_graph, backward into the parameters), the most
expensive classifier computation of adversarial training when the penalty is on.

Usage::

    python benchmarks/classifier_speed.py [--batch 256] [--frames 8] [--beads 10] [--threads 1] [--out FILE]

Prints one JSON object (and writes it to ``--out``): the settings, median/min seconds per forward+backward, the
same for the R1 penalty step, and whether the target is met.
"""
import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from openmm_dynmatch.fileio import write_json
from openmm_dynmatch.models.classifier import WindowClassifier, r1_penalty

TARGET_S = 3.0


def chain_windows(batch, n_frames, n_beads, seed):
    """Random-walk chain windows, shape (batch, n_frames + 1, n_beads, 3), nm (bonds ~0.3 nm, steps ~0.03 nm)."""
    rng = np.random.default_rng(seed)
    start = np.cumsum(0.17 * rng.normal(size=(batch, 1, n_beads, 3)), axis=2)
    steps = 0.03 * rng.normal(size=(batch, n_frames + 1, n_beads, 3))
    steps[:, 0] = 0.0
    return torch.tensor(start + np.cumsum(steps, axis=1))


def time_calls(fn, repeats):
    """Seconds of each of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="windows per batch")
    parser.add_argument("--frames", type=int, default=8, help="T, frames after the first (window has T+1)")
    parser.add_argument("--beads", type=int, default=10, help="beads per molecule (all of distinct types)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    clf = WindowClassifier(list(range(args.beads)), dtype=args.dtype)
    windows = chain_windows(args.batch, args.frames, args.beads, args.seed).to(clf.dtype)

    def train_step():
        clf.zero_grad()
        clf(windows).pow(2).mean().backward()

    def r1_step():
        clf.zero_grad()
        r1_penalty(clf, windows).backward()

    step_times = time_calls(train_step, args.repeats)
    r1_times = time_calls(r1_step, args.repeats)
    result = {
        "benchmark": "classifier_speed",
        "batch": args.batch, "frames": args.frames, "beads": args.beads, "dtype": args.dtype,
        "threads": args.threads, "repeats": args.repeats,
        "n_parameters": sum(p.numel() for p in clf.parameters()),
        "spec": clf.spec,
        "forward_backward_s_median": statistics.median(step_times),
        "forward_backward_s_min": min(step_times),
        "r1_step_s_median": statistics.median(r1_times),
        "target_s": TARGET_S,
        "meets_target": statistics.median(step_times) <= TARGET_S,
        "torch": torch.__version__, "machine": platform.machine(),
    }
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

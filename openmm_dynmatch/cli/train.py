"""Train a CG model (dynamic matching, force matching or relative entropy) from a YAML config.

Writes the run directory: config.yaml, log.csv, checkpoints, potential.pt and model.pt (TorchScript for
OpenMM). Any config key can be overridden with --set section.key=value.
"""
from openmm_dynmatch.config import load_config


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML configuration (defaults when omitted)")
    parser.add_argument("--run-dir", help="output folder of the run (required unless --resume)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its checkpoint; the configuration must match the "
                             "run's config.yaml except in keys that may change on resume (train.iterations, "
                             "train.checkpoint_every, train.platform, train.tensorboard)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.iterations=100 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from pathlib import Path

    from openmm_dynmatch.runs import run_training

    if args.resume:
        run_dir = Path(args.resume)
        config_path = args.config or run_dir / "config.yaml"
    elif args.run_dir:
        run_dir, config_path = Path(args.run_dir), args.config
    else:
        raise ValueError("give --run-dir for a new run or --resume RUN_DIR to continue one")
    config = load_config(config_path, args.overrides)
    summary = run_training(config, run_dir, resume=bool(args.resume), progress=not args.no_progress)
    print(f"model for OpenMM: {summary['model']}")
    print(f"friction: {summary['friction_per_ps']:.4g} 1/ps")
    return 0

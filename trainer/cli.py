"""goemo-train: one training run from a TOML config (plus flags and --set overrides) to a run folder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from trainer.config import ConfigError, RunConfig, apply_overrides, config_to_toml, parse_override, read_toml, \
    validate_config
from trainer.contract import (BEST, CHECKPOINTS_DIR, EVENTS_FILE, EXIT_BAD_INPUT, RUN_CONFIG_FILE, TRAINER_STATE_FILE,
                              WEIGHTS_FILE, CheckpointStateError, find_best, find_latest)
from trainer.run_lock import RunLock, RunLocked, is_first_process

# flag → config key, for the keys people change most often
FLAG_KEYS = {
    "model": str, "loss": str, "epochs": float, "lr": float, "batch_size": int, "max_train_samples": int,
    "max_eval_samples": int, "max_steps": int, "device": str, "seed": int,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goemo-train", description=__doc__)
    parser.add_argument("--config", type=Path, help="run config (TOML); defaults apply when omitted")
    parser.add_argument("--out", type=Path, required=True, help=f"run folder for {EVENTS_FILE} and {CHECKPOINTS_DIR}/")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    parser.add_argument("--export-from", type=Path, metavar="RUN_DIR",
                        help="no training: export RUN_DIR's best weights (dev/test probabilities, tuned thresholds)")
    parser.add_argument("--ensemble-from", type=Path, metavar="RUN_DIR", action="append", default=[],
                        help="no training: average the best weights of these runs (repeat the flag per run), tune "
                             "thresholds on dev for the average and evaluate test once")
    for key, kind in FLAG_KEYS.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (repeatable), e.g. --set loss_params.ratio=0.5")
    return parser


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Config file (or the run folder's own run.toml on --resume), then flags, then --set."""
    config_path = args.config
    if config_path is None and args.resume and (args.out / RUN_CONFIG_FILE).exists():
        config_path = args.out / RUN_CONFIG_FILE
    data: dict[str, Any] = read_toml(config_path) if config_path else {}
    overrides = [(k, getattr(args, k)) for k in FLAG_KEYS if getattr(args, k) is not None]
    overrides += [parse_override(item) for item in args.overrides]
    source = str(config_path) if config_path else "goemo-train"
    if overrides:
        data = apply_overrides(data, overrides)
        source += " (with flags)"
    config = validate_config(data, source)
    if config.run == "run":
        config.run = args.out.name
    return config


def check_resumable(out: Path, config: RunConfig) -> None:
    """Refuse a --resume whose checkpoint cannot be loaded, before anything is written or loaded.

    Cheap: reads trainer_state.json and checks the checkpoint's files exist. The schedule (which
    needs the data) is checked again when the checkpoint loads.
    """
    from trainer.checkpoints import validate_latest

    latest = find_latest(out / CHECKPOINTS_DIR)
    if latest is None:
        return
    state = validate_latest(latest)
    if state["seed"] != config.seed:
        raise CheckpointStateError(f"{latest / TRAINER_STATE_FILE}: written with seed {state['seed']}, "
                                   f"but the config has seed {config.seed}; resume with the run's own config")


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lock = RunLock(args.out)
    try:
        return _main(args, lock)
    finally:
        lock.release()  # the process's end drops it anyway; this is for callers that run main() twice


def _main(args: argparse.Namespace, lock: RunLock) -> int:
    from trainer.data import DataError
    from trainer.faults import FaultPlan, FaultSpecError
    from trainer.model_source import ModelError

    try:
        config = resolve_config(args)
        # Held until the trainer ends: a second trainer on a folder in use exits here, naming the holder. A
        # folder that does not exist yet is locked only once the input has passed (bad input creates nothing).
        if is_first_process() and args.out.exists():
            lock.acquire()
        FaultPlan.from_env()
        if not args.resume and (args.out / EVENTS_FILE).exists():
            raise ConfigError(f"{args.out}: already holds a run ({EVENTS_FILE}); "
                              "use --resume to continue it or choose another --out")
        if args.resume:
            check_resumable(args.out, config)
        if args.export_from and find_best(args.export_from / CHECKPOINTS_DIR) is None:
            raise ConfigError(f"{args.export_from}: no {CHECKPOINTS_DIR}/{BEST}/{WEIGHTS_FILE} to export")
        if args.ensemble_from:
            from trainer.ensemble import check_members

            if args.export_from:
                raise ConfigError("--export-from and --ensemble-from: choose one (a single run, or several averaged)")
            check_members(config, args.ensemble_from)
        if is_first_process():
            lock.acquire()
        _quiet_libraries()
        from trainer.preflight import prepare
        from trainer.run import run_training

        prepared = prepare(config)
    except (ConfigError, DataError, ModelError, FaultSpecError, ValueError, RunLocked) as exc:
        print(f"goemo-train: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    run_toml = args.out / RUN_CONFIG_FILE
    # run.toml is written by the run itself once that is safe (after the checkpoint loaded, on resume).
    own_file = args.config is not None and run_toml.exists() and args.config.resolve() == run_toml.resolve()
    return run_training(prepared, args.out, resume=args.resume, export_from=args.export_from,
                        config_text=None if own_file else config_to_toml(config),
                        ensemble_from=args.ensemble_from or None)


if __name__ == "__main__":
    sys.exit(main())

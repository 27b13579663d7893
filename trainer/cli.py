"""goemo-train: one training run from a TOML config (plus flags and --set overrides) to a run folder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from trainer.config import ConfigError, RunConfig, apply_overrides, config_to_toml, parse_override, read_toml, \
    validate_config

EXIT_BAD_INPUT = 2

# flag → config key, for the keys people change most often
FLAG_KEYS = {
    "model": str, "loss": str, "epochs": float, "lr": float, "batch_size": int, "max_train_samples": int,
    "max_eval_samples": int, "max_steps": int, "device": str, "seed": int,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goemo-train", description=__doc__)
    parser.add_argument("--config", type=Path, help="run config (TOML); defaults apply when omitted")
    parser.add_argument("--out", type=Path, required=True, help="run folder for events.jsonl and checkpoints/")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    parser.add_argument("--export-from", type=Path, metavar="RUN_DIR",
                        help="no training: export RUN_DIR's best weights (dev/test probabilities, tuned thresholds)")
    for key, kind in FLAG_KEYS.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (repeatable), e.g. --set loss_params.ratio=0.5")
    return parser


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Config file (or the run folder's own run.toml on --resume), then flags, then --set."""
    config_path = args.config
    if config_path is None and args.resume and (args.out / "run.toml").exists():
        config_path = args.out / "run.toml"
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


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from trainer.data import DataError
    from trainer.faults import FaultPlan, FaultSpecError
    from trainer.model_source import ModelError

    try:
        config = resolve_config(args)
        FaultPlan.from_env()
        if not args.resume and (args.out / "events.jsonl").exists():
            raise ConfigError(f"{args.out}: already holds a run (events.jsonl); "
                              "use --resume to continue it or choose another --out")
        if args.export_from and not (args.export_from / "checkpoints" / "best" / "model.safetensors").exists():
            raise ConfigError(f"{args.export_from}: no checkpoints/best/model.safetensors to export")
        _quiet_libraries()
        from trainer.loop import prepare, run_training

        prepared = prepare(config)
    except (ConfigError, DataError, ModelError, FaultSpecError, ValueError) as exc:
        print(f"goemo-train: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args.out.mkdir(parents=True, exist_ok=True)
    run_toml = args.out / "run.toml"
    if not (args.config and run_toml.exists() and args.config.resolve() == run_toml.resolve()):
        run_toml.write_text(config_to_toml(config))
    return run_training(prepared, args.out, resume=args.resume, export_from=args.export_from)


if __name__ == "__main__":
    sys.exit(main())

"""goemo-cockpit: the TUI (default), --headless pipeline runs, --attach, --resume, and `presets`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from cockpit.pipeline.spec import PresetError, list_presets, load_preset, phase1_plan

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goemo-cockpit", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["presets"], help="'presets' lists the shipped presets")
    parser.add_argument("--preset", default="quick", help="a preset name (see `goemo-cockpit presets`) or a TOML path")
    parser.add_argument("--headless", action="store_true", help="run the pipeline in the foreground, console output")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where pipeline folders go (./runs)")
    parser.add_argument("--phases", help="comma-separated phases to run, e.g. 1,2 (default: the preset's)")
    parser.add_argument("--configs", help="comma-separated Phase-1 configs (default: all of the preset's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset key: lr=1e-4 (run defaults), pipeline.top_k=1, phase1.epochs=2")
    parser.add_argument("--attach", type=Path, metavar="DIR", help="open the TUI on a pipeline folder")
    parser.add_argument("--resume", type=Path, metavar="DIR", help="continue an interrupted pipeline")
    parser.add_argument("--pipeline-dir", type=Path, help=argparse.SUPPRESS)  # set by the TUI's launcher
    return parser


def _parse_phases(text: str | None, default: list[int]) -> list[int]:
    if not text:
        return default
    try:
        phases = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise PresetError(f"--phases {text!r}: expected comma-separated numbers from 1 to 4") from None
    if not phases or any(p not in (1, 2, 3, 4) for p in phases):
        raise PresetError(f"--phases {text!r}: expected comma-separated numbers from 1 to 4")
    return phases


def _history_selection(pipeline_dir: Path) -> tuple[list[int], list[str]]:
    from trainer.events import read_events

    start = next((e for e in read_events(pipeline_dir / "pipeline.jsonl") if e["type"] == "pipeline_start"), None)
    if start is None:
        raise PresetError(f"{pipeline_dir}: no pipeline_start in pipeline.jsonl (expected a pipeline folder)")
    return list(start["phases"]), list(start["configs"])


def prepare_pipeline(args: argparse.Namespace) -> tuple[Any, list[int], list[str], Path, dict[str, Any] | None]:
    """Validate everything a pipeline needs before anything starts; PresetError on bad input."""
    from cockpit.pipeline.supervisor import plan_slots

    if args.resume:
        pipeline_dir = args.resume
        if not (pipeline_dir / "preset.toml").exists():
            raise PresetError(f"{pipeline_dir}: no preset.toml (expected a pipeline folder to resume)")
        preset, _ = load_preset(str(pipeline_dir / "preset.toml"))
        phases, configs = _history_selection(pipeline_dir)
        data = None
    else:
        preset, data = load_preset(args.preset, args.overrides)
        phases = _parse_phases(args.phases, preset.pipeline.phases)
        configs = [c.strip() for c in args.configs.split(",") if c.strip()] if args.configs else \
            [c.name for c in preset.configs]
        phase1_plan(preset, configs)  # unknown config names are bad input
        pipeline_dir = args.pipeline_dir
    plan_slots(preset)
    return preset, phases, configs, pipeline_dir, data


def run_headless(args: argparse.Namespace) -> int:
    from cockpit.headless import HeadlessConsole
    from cockpit.pipeline.supervisor import Supervisor, new_pipeline_dir, save_preset

    try:
        preset, phases, configs, pipeline_dir, data = prepare_pipeline(args)
    except PresetError as exc:
        print(f"goemo-cockpit: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if pipeline_dir is None:
        pipeline_dir = new_pipeline_dir(args.runs_dir, preset.name)
    pipeline_dir.mkdir(parents=True, exist_ok=True)
    if data is not None:
        save_preset(pipeline_dir, data)
    console = HeadlessConsole(primary=preset.pipeline.primary_threshold)
    supervisor = Supervisor(pipeline_dir, preset, phases, configs, on_event=console.on_event, on_tick=console.on_tick)
    code = supervisor.run()
    console.final(json.loads((pipeline_dir / "summary.json").read_text()), pipeline_dir)
    return code


def launch_detached(preset: str, runs_dir: Path, phases: list[int] | None = None, configs: list[str] | None = None,
                    overrides: Sequence[str] = (), resume: Path | None = None) -> Path:
    """Start a supervisor in its own session (it outlives the terminal and the TUI); returns its folder.

    Raises PresetError for bad input, before anything is started.
    """
    from cockpit.pipeline.supervisor import new_pipeline_dir

    args = build_parser().parse_args([])
    args.preset, args.overrides, args.resume = preset, list(overrides), resume
    args.phases = ",".join(map(str, phases)) if phases else None
    args.configs = ",".join(configs) if configs else None
    loaded, *_ = prepare_pipeline(args)
    pipeline_dir = resume or new_pipeline_dir(runs_dir, loaded.name)
    cmd = [sys.executable, "-m", "cockpit.cli", "--headless"]
    if resume:
        cmd += ["--resume", str(resume)]
    else:
        cmd += ["--preset", preset, "--pipeline-dir", str(pipeline_dir), "--runs-dir", str(runs_dir)]
        cmd += [f"--set={o}" for o in overrides]
        if args.phases:
            cmd += ["--phases", args.phases]
        if args.configs:
            cmd += ["--configs", args.configs]
    log = open(pipeline_dir / "supervisor.log", "ab")
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
    log.close()
    return pipeline_dir


def run_tui(args: argparse.Namespace) -> int:
    from cockpit.app import make_app

    pipeline_dir = args.attach
    if args.resume:
        try:
            pipeline_dir = launch_detached(args.preset, args.runs_dir, resume=args.resume)
        except PresetError as exc:
            print(f"goemo-cockpit: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if pipeline_dir is not None and not (pipeline_dir / "pipeline.jsonl").exists() and not args.resume:
        print(f"goemo-cockpit: error: {pipeline_dir}: no pipeline.jsonl (expected a pipeline folder)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if pipeline_dir is None:
        try:
            load_preset(args.preset, args.overrides)
        except PresetError as exc:
            print(f"goemo-cockpit: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    app = make_app(pipeline_dir, args.runs_dir, args.preset)
    app.run()
    if app.return_code:
        return app.return_code
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "presets":
        for name, description in list_presets():
            print(f"{name:24} {description}")
        return 0
    if args.headless:
        return run_headless(args)
    return run_tui(args)


if __name__ == "__main__":
    sys.exit(main())

"""goemo-cockpit: the TUI (default), --headless pipeline runs, --attach, --resume, --web (the TUI in a
browser), and the commands `presets`, `export` and `compare`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from cockpit.pipeline.presets import PresetError, list_presets, load_preset, shell_setting
from cockpit.pipeline.start import (BAD_INPUT_ERRORS, PipelineRequest, materialise, parse_configs, parse_phases,
                                    prepare_pipeline, start_detached)
from cockpit.web import add_web_arguments, web_problem
from trainer.contract import ENV_NOTIFY, EXIT_BAD_INPUT, EXIT_FAILED, PipelinePaths, is_pipeline_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goemo-cockpit", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["presets", "export", "compare"],
                        help="'presets' lists the shipped presets; 'export DIR --to csv|parquet|tensorboard|mlflow|"
                             "trackio|wandb' writes a pipeline's tables or replays it into a tracker; "
                             "'compare DIR DIR ...' puts pipelines side by side (see `goemo-cockpit export -h`)")
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
    add_web_arguments(parser)
    return parser


def _bad_input(exc: Exception) -> int:
    print(f"goemo-cockpit: error: {exc}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _request(args: argparse.Namespace) -> PipelineRequest:
    return PipelineRequest(args.preset, args.runs_dir, parse_phases(args.phases), parse_configs(args.configs),
                           list(args.overrides), args.resume, args.pipeline_dir)


def run_headless(args: argparse.Namespace) -> int:
    from cockpit.headless import HeadlessConsole
    from cockpit.pipeline.supervisor import PipelineIOError, PipelineLaunchError, Supervisor

    try:
        prepared = prepare_pipeline(_request(args))
        pipeline_dir = materialise(prepared, args.runs_dir)
    except BAD_INPUT_ERRORS as exc:
        return _bad_input(exc)
    except OSError as exc:
        return _bad_input(PresetError(f"{exc.filename or args.runs_dir}: {exc.strerror or exc}"))
    for warning in prepared.warnings:
        print(f"goemo-cockpit: warning: {warning}", file=sys.stderr)
    preset = prepared.preset
    console = HeadlessConsole(primary=preset.pipeline.primary_threshold, select_by=preset.pipeline.select_by)
    supervisor = Supervisor(pipeline_dir, preset, prepared.phases, prepared.configs,
                            on_event=console.on_event, on_tick=console.on_tick)
    try:
        code = supervisor.run()
    except BAD_INPUT_ERRORS as exc:
        return _bad_input(exc)
    except (PipelineIOError, PipelineLaunchError) as exc:
        print(f"goemo-cockpit: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        summary = json.loads(PipelinePaths(pipeline_dir).summary.read_text(encoding="utf-8"))
        console.final(summary, pipeline_dir)
    except (OSError, ValueError) as exc:
        print(f"goemo-cockpit: warning: no summary to show ({exc})", file=sys.stderr)
    return code


def run_tui(args: argparse.Namespace) -> int:
    from cockpit.app import make_app

    pipeline_dir = args.attach
    try:
        if args.resume:
            pipeline_dir = start_detached(_request(args))
        elif pipeline_dir is not None and not is_pipeline_dir(pipeline_dir):
            raise PresetError(f"{pipeline_dir}: not a pipeline folder (expected {PipelinePaths(pipeline_dir).events.name})")
        elif pipeline_dir is None:
            load_preset(args.preset, args.overrides)
    except BAD_INPUT_ERRORS as exc:
        return _bad_input(exc)
    app = make_app(pipeline_dir, args.runs_dir, args.preset)
    app.run()
    return app.return_code or 0


def _web_argv(args: argparse.Namespace, notify: list[str] | None = None) -> list[str]:
    """The goemo-cockpit arguments each browser session runs: the same TUI, without --web. Notify URLs set
    with --set go to the sessions through $GOEMO_NOTIFY (``notify``: the preset's resolved URLs), since a
    session's command line is public (ps)."""
    if args.attach is not None:
        return ["--attach", str(args.attach.resolve())]
    from cockpit.outlets.notify_urls import notify_environment

    overrides, env = notify_environment(list(notify or []), list(args.overrides))
    if env.get(ENV_NOTIFY) != os.environ.get(ENV_NOTIFY):
        os.environ[ENV_NOTIFY] = env[ENV_NOTIFY]  # textual-serve starts each session with a copy of os.environ
    argv = ["--preset", args.preset, "--runs-dir", str(args.runs_dir.resolve())]
    for item in overrides:
        argv += ["--set", item]
    return argv


def _compare_tui(comparison) -> None:
    """`goemo-cockpit compare` without --headless: the comparison screen."""
    from cockpit.screens.compare import CompareApp

    CompareApp(comparison).run()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The commands with arguments of their own parse them themselves.
    if argv and argv[0] == "export":
        from cockpit.export import main_export

        return main_export(argv[1:])
    if argv and argv[0] == "compare":
        from cockpit.compare import main_compare

        return main_compare(argv[1:], open_tui=_compare_tui)
    args = build_parser().parse_args(argv)
    if args.command == "presets":
        for name, description in list_presets():
            print(f"{name:24} {description}")
        return 0
    try:
        parse_phases(args.phases)
    except PresetError as exc:
        return _bad_input(exc)
    if args.headless:
        return run_headless(args)
    if args.web:
        from cockpit.web import run_web

        problem = web_problem(args)
        if problem:
            return _bad_input(PresetError(problem))
        if shell := next((item for item in args.overrides if shell_setting(item)), None):
            return _bad_input(PresetError(f"--set {shell.split('=', 1)[0].strip()}: runs shell commands, so under "
                                          f"--web it comes from the preset file only"))
        if args.resume is not None:  # resumed once, here: every browser tab then attaches to it
            try:
                args.attach = start_detached(_request(args))
            except BAD_INPUT_ERRORS as exc:
                return _bad_input(exc)
        if args.attach is not None and not is_pipeline_dir(args.attach):
            return _bad_input(PresetError(f"{args.attach}: not a pipeline folder "
                                          f"(expected {PipelinePaths(args.attach).events.name})"))
        notify: list[str] = []
        if args.attach is None:
            try:
                notify = list(load_preset(args.preset, args.overrides)[0].pipeline.notify)
            except BAD_INPUT_ERRORS as exc:
                return _bad_input(exc)
        return run_web(args, _web_argv(args, notify))
    return run_tui(args)


if __name__ == "__main__":
    sys.exit(main())

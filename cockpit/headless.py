"""The headless console view: one line per phase, launch, eval and exit; progress about every 30 s;
alerts and stalls on stderr; the final leaderboard as a table."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from trainer.events import threshold_key


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class HeadlessConsole:
    """Renders supervisor and trainer events as concise console lines."""

    def __init__(self, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr, progress_every_s: float = 30.0,
                 primary: float = 0.2) -> None:
        self.out, self.err = out, err
        self.every = progress_every_s
        self.key = threshold_key(primary)
        self.last_progress = time.time()
        self.runs: dict[str, dict[str, Any]] = {}

    def _say(self, text: str, err: bool = False) -> None:
        stream = self.err if err else self.out
        stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        stream.flush()

    def on_event(self, source: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if source == "pipeline":
            self._pipeline_event(kind, event)
            return
        run = self.runs.setdefault(source, {})
        if kind == "run_start":
            run.update(total=event.get("total_steps"), started=time.time(), first_step=None, ended=False)
            if event.get("resumed_from_step"):
                self._say(f"[{source}] resumed from step {event['resumed_from_step']}")
        elif kind == "step":
            run.update(step=event["step"], sps=event.get("samples_per_s"), epoch=event.get("epoch"))
            if run.get("first_step") is None:
                run.update(first_step=event["step"], first_t=time.time())
        elif kind == "eval":
            f1 = event.get("f1_macro") or {}
            micro = (event.get("f1_micro") or {}).get(self.key)
            tuned = (event.get("tuned") or {}).get("f1_macro")
            label = f"{event['split']} (final)" if event.get("final") else event["split"]
            self._say(f"[{source}] step {event['step']} epoch {event.get('epoch', 0):.2f} {label} "
                      f"F1@{self.key} {f1.get(self.key, 0):.4f}  F1@0.5 {f1.get('0.5') or 0:.4f}  "
                      f"micro {micro or 0:.4f}" + (f"  tuned {tuned:.4f}" if tuned is not None else ""))
        elif kind == "alert" and event.get("level") in ("warn", "error"):
            self._say(f"!! [{source}] {event['level']} {event['code']}: {event['message']}", err=True)
        elif kind == "run_end":
            run["ended"] = True
            self._say(f"[{source}] {event['status']}: {event['reason']} ({_duration(event.get('wall_s', 0))})")

    def _pipeline_event(self, kind: str | None, e: dict[str, Any]) -> None:
        if kind == "pipeline_start":
            verb = "resumed" if e.get("resumed") else "started"
            self._say(f"pipeline {e['pipeline']} ({e['preset']}) {verb}: phases {e['phases']} on {', '.join(e['devices'])}")
        elif kind == "phase_start":
            runs = f": {', '.join(e['runs'])}" if e.get("runs") else ""
            self._say(f"== phase {e['phase']} ({e['name']}){runs}")
        elif kind == "phase_end" and e.get("ranking") is not None:
            self._say(f"== phase {e['phase']} ranking by dev F1@{self.key}: {', '.join(e['ranking']) or '(none)'}")
        elif kind == "run_launch":
            self._say(f"[{e['run']}] launched on {e['device']} (attempt {e['attempt']}, pid {e['pid']})")
        elif kind == "run_exit" and e.get("code") != 0:
            self._say(f"!! [{e['run']}] exited with {e['code']}: {e.get('reason')}", err=True)
        elif kind == "stall":
            self._say(f"!! [{e['run']}] stalled: silent {e['silent_s']:.0f} s (allowed {e.get('allowed_s', 0):.0f} s); "
                      f"stacks in {e['dump']}; action: {e.get('action')}", err=True)
        elif kind == "restart":
            self._say(f"[{e['run']}] restarting from step {e['from_step']} (attempt {e['attempt']}): {e.get('reason')}")
        elif kind == "run_done" and e.get("status") != "completed":
            self._say(f"!! [{e['run']}] {e['status']} after {e['attempts']} attempt(s)", err=True)
        elif kind == "alert" and e.get("level") in ("warn", "error"):
            self._say(f"!! {e['code']}: {e['message']}", err=True)

    def on_tick(self, supervisor: Any) -> None:
        now = time.time()
        if now - self.last_progress < self.every:
            return
        self.last_progress = now
        for run_id in supervisor.active:
            run = self.runs.get(run_id, {})
            if run.get("ended"):
                continue  # finished; the process is only exiting
            step, total = run.get("step"), run.get("total")
            if not step or not total:
                self._say(f"[{run_id}] starting…")
                continue
            eta = ""
            if run.get("first_t") and step > run["first_step"]:
                rate = (step - run["first_step"]) / (now - run["first_t"])
                eta = f"  ETA {_duration((total - step) / rate)}" if rate > 0 else ""
            self._say(f"[{run_id}] step {step}/{total} ({100 * step / total:.0f}%)  "
                      f"{run.get('sps') or 0:.0f} samples/s{eta}")

    def final(self, summary: dict[str, Any], pipeline_dir: Any) -> None:
        from rich.console import Console
        from rich.table import Table

        console = Console(file=self.out, width=None if self.out.isatty() else 120)
        key = f"f1_macro@{self.key}"
        table = Table(title=f"{summary['pipeline']}: {summary['status']} (dev, ranked by {key})")
        for col in ("run", "status", key, "F1@0.5", "micro", "tuned", "Δ base", "target"):
            table.add_column(col, justify="left" if col in ("run", "status") else "right")
        for row in summary["leaderboard"]:
            def f(v: Any) -> str:
                return "–" if v is None else f"{v:.4f}"
            delta = row.get("delta_vs_baseline")
            table.add_row(row["run"], row["status"], f(row.get(key)), f(row.get("f1_macro@0.5")),
                          f(row.get(f"f1_micro@{self.key}")), f(row.get("tuned_f1_macro")),
                          "–" if delta is None else f"{delta:+.4f}", "yes" if row.get("meets_target") else "no")
        console.print(table)
        final = summary.get("final")
        if final and final.get("test"):
            t = final["test"]
            console.print(f"final ({final['config']}) on held-out test: macro-F1 tuned {t.get('f1_macro_tuned', 0):.4f}, "
                          f"@{self.key} {t.get(key, 0):.4f}, @0.5 {t.get('f1_macro@0.5', 0):.4f}")
            console.print(f"model: {pipeline_dir}/final  (goemo-predict --model {pipeline_dir}/final \"text\")")
        console.print(f"summary: {pipeline_dir}/summary.json")
        if (pipeline_dir / "report.md").exists():
            console.print(f"report:  {pipeline_dir}/report.md")

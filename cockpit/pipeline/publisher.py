"""The results publisher: leaderboard, ``summary.json``, ``final/`` and the report, all written so that a
reader (or a kill) never sees half a file and never loses the previous complete copy."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

from cockpit.judgements.paired import against_leader
from cockpit.judgements.seeds import (decision, group_members, group_rows, pooled_against_baseline,
                                     pooled_against_leader)
from cockpit.pipeline.results import final_scores, leaderboard, run_scores
from cockpit.records import read_run_history
from cockpit.pipeline.scheduler import RunRecord
from cockpit.pipeline.presets import Preset
from trainer.contract import (BASELINE_CONFIG, BASELINE_RUN, ENSEMBLE_FILE, FINAL_DIR, FINAL_PHASE, FINAL_RUN,
                              MODEL_CARD_FILE, OLD_SUFFIX, THRESHOLDS_FILE, TMP_SUFFIX, PipelinePaths, f1_macro_key,
                              selection_key)
from trainer.durable import folder_file_mode, fsync_dir, swap_folder, write_json_atomic
from trainer.file_reads import read_json


def _fsync_tree(root: Path, mode: int) -> None:
    """Flush every file of a copied tree to disk and give it the pipeline folder's file mode."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            os.chmod(path, mode)
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        fsync_dir(folder)


class ResultsPublisher:
    """Computes the leaderboard from the runs' events and publishes summary.json, final/ and report.md."""

    def __init__(self, paths: PipelinePaths, preset: Preset) -> None:
        self.paths = paths
        self.preset = preset
        self.settings = preset.pipeline

    @property
    def key(self) -> str:
        return f1_macro_key(self.settings.primary_threshold)

    @property
    def rank_key(self) -> str:
        """The leaderboard key that ranks runs: the primary macro-F1 or tuned_cv (``select_by``)."""
        return selection_key(self.settings.select_by, self.settings.primary_threshold)

    def _rows(self, records: Iterable[RunRecord]) -> list[dict[str, Any]]:
        rows = []
        for rec in records:
            if rec.phase == FINAL_PHASE:
                continue
            scores = run_scores(read_run_history(self.paths.root, rec.run_id), self.settings.primary_threshold,
                                self.settings.select_by) or {}
            rows.append({"run": rec.run_id, "phase": rec.phase, "config": rec.config, "loss": self._loss(rec.config),
                         "status": rec.status,
                         "attempts": rec.attempts, self.key: None, **scores})
        return rows

    def _loss(self, config: str) -> str | None:
        return next((c.loss for c in self.preset.configs if c.name == config), None)

    def leaderboard(self, records: Iterable[RunRecord]) -> list[dict[str, Any]]:
        rows = self._rows(records)
        return leaderboard(rows, self.settings.primary_threshold, self._baseline(rows)[1],
                           self.settings.target_f1, self.settings.reference_f1, self.settings.select_by)

    def _baseline(self, rows: list[dict[str, Any]]) -> tuple[list[str], float | None]:
        """Phase 1's bce runs and their mean macro-F1 at the primary threshold (one run, or its seeds)."""
        runs = [r for r in rows if r["phase"] == 1 and r["config"] == BASELINE_CONFIG]
        values = [r[self.key] for r in runs if r.get(self.key) is not None]
        return sorted(r["run"] for r in runs), (sum(values) / len(values) if values else None)

    def groups(self, board: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The leaderboard by config: each (phase, config)'s seeds together, best first by the selection rule
        (cockpit/judgements/seeds.py). With one seed per config a group is its one run."""
        planned = {(row["phase"], row["config"]): self.preset.seeds(row["phase"]) for row in board}
        return group_rows(board, self.settings.primary_threshold, self.settings.select_by, planned)

    def ranked_configs(self, records: Iterable[RunRecord], phase: int) -> list[str]:
        """Configs of a phase with a completed, scored seed, best first by the selection rule (mean over seeds)."""
        return [g["config"] for g in self.groups(self.leaderboard(records)) if g["phase"] == phase and g["n"]]

    def trained_run(self, records: Iterable[RunRecord], config: str) -> str | None:
        """The completed run of a config whose best weights a reuse or ensemble final takes: Phase 3's, else 1's;
        of a seed group, its best seed on the leaderboard."""
        board = self.leaderboard(records)
        for phase in (3, 1):
            runs = [row["run"] for row in board
                    if row["phase"] == phase and row["config"] == config and row["status"] == "completed"]
            if runs:
                return runs[0]
        return None

    def summary(self, records: Iterable[RunRecord], status: str, phase: int | None) -> dict[str, Any]:
        # Each run against the leader, paired over the dev rows both scored (cockpit/judgements/paired.py).
        board = against_leader(self.leaderboard(records), lambda run: self.paths.run(run).root,
                               self.settings.primary_threshold)
        base_runs, base_f1 = self._baseline(board)
        run_dir, primary = (lambda run: self.paths.run(run).root), self.settings.primary_threshold
        members = group_members(run_dir)  # each run's dev probabilities read once for both comparisons
        groups = pooled_against_leader(self.groups(board), members, primary)
        groups = pooled_against_baseline(groups, (1, BASELINE_CONFIG), members, primary)
        decisions = [d for d in (decision(groups, phase, self.settings.primary_threshold, self.settings.select_by)
                                 for phase in sorted({g["phase"] for g in groups})) if d is not None]
        final = None
        if self.paths.summary_final.exists():
            try:
                final = json.loads(self.paths.summary_final.read_text(encoding="utf-8"))
            except ValueError:
                final = None
        return {
            "pipeline": self.paths.root.name, "preset": self.preset.name, "status": status,
            "primary_threshold": self.settings.primary_threshold,
            "select_by": self.settings.select_by, "selection_key": self.rank_key,
            "baseline": {"run": base_runs[0] if len(base_runs) == 1 else BASELINE_RUN, "runs": base_runs,
                         self.key: base_f1},
            "reference_f1": self.settings.reference_f1, "target_f1": self.settings.target_f1,
            "phase": phase, "leaderboard": board, "groups": groups, "decisions": decisions,
            "seeds": {str(p): self.preset.seeds(p) for p in (1, 3, 4)}, "final": final,
        }

    def write_summary(self, records: Iterable[RunRecord], status: str, phase: int | None) -> None:
        write_json_atomic(self.paths.summary, self.summary(records, status, phase))

    def publish_final(self, config: str, trained_in: str) -> dict[str, Any]:
        """Copy the final run's export into final/ (replaced by rename, never deleted first), write the
        model card and record the final scores in summary.final.json."""
        from cockpit.pipeline.report import model_card

        run = self.paths.run(FINAL_RUN)
        final = self.paths.final
        tmp = final.with_name(FINAL_DIR + TMP_SUFFIX)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(run.export, tmp)
        scores = final_scores(read_run_history(self.paths.root, FINAL_RUN), self.settings.primary_threshold)
        record = {"run": FINAL_RUN, "config": config, "trained_in": trained_in, "mode": self.settings.final,
                  "select_by": self.settings.select_by, "dev": scores.get("dev"), "test": scores.get("test"),
                  "thresholds": f"{FINAL_DIR}/{THRESHOLDS_FILE}"}
        if (run.export / ENSEMBLE_FILE).is_file():
            ensemble = read_json(run.export / ENSEMBLE_FILE, "the members p4-final averaged")
            record["rule"] = ensemble.get("rule")
            record["ensemble_rule"] = ensemble.get("ensemble_rule")
            record["members"] = [{k: m.get(k) for k in ("run", "config", "best_step", "dev", "test")}
                                 for m in ensemble.get("members", [])]
        (tmp / MODEL_CARD_FILE).write_text(model_card(self.paths.root, self.preset, record), encoding="utf-8")
        _fsync_tree(tmp, folder_file_mode(self.paths.root))
        swap_folder(tmp, final)  # at every moment a complete final/ or final.old/ exists
        write_json_atomic(self.paths.summary_final, record)
        return record

    def wants_onnx(self) -> bool:
        """`onnx = "auto"` and the onnx extra installed (ONNX Runtime and its quantiser's onnx)."""
        return self.settings.onnx == "auto" and all(importlib.util.find_spec(m) is not None
                                                    for m in ("onnxruntime", "onnx"))

    def add_onnx(self, timeout_s: float = 1800.0) -> str | None:
        """ONNX and int8 copies beside final/'s safetensors, made by goemo-export-onnx in a process of its own
        (the supervisor never imports torch); returns what went wrong, or None. final/ stays usable by the torch
        backend whatever happens here."""
        command = [sys.executable, "-m", "trainer.onnx_export", "--model", str(self.paths.final)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return f"goemo-export-onnx took over {timeout_s:.0f} s"
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return lines[-1] if lines else f"goemo-export-onnx exited {done.returncode}"
        return None

    def restore_interrupted_final(self) -> None:
        """A kill between the two renames above leaves only final.old/: put it back."""
        old = self.paths.final.with_name(FINAL_DIR + OLD_SUFFIX)
        if old.is_dir() and not self.paths.final.exists():
            os.replace(old, self.paths.final)

    def write_report(self) -> str | None:
        """Write report.md and its plots; returns why it could not, or None."""
        try:
            from cockpit.pipeline.report import write_report

            write_report(self.paths.root)
        except Exception as exc:  # a report is never worth losing the pipeline's exit code over
            return f"{type(exc).__name__}: {exc}"
        return None


"""The leaderboard and the final result as the views show them: summary.json's ranking (the supervisor's),
with live runs it has not ranked yet placed by the records' one ranking rule."""

from __future__ import annotations

from typing import Any, Sequence

from cockpit.records import rank_place
from cockpit.records.evals import interval
from cockpit.records.values import integer as _int, number as _num, text as _str
from cockpit.run_state import RunState
from cockpit.snapshots import SECONDARY_THRESHOLD, FinalResult, LeaderRow
from trainer.contract import (BASELINE_RUN, FINAL_MODES, TUNED_CV_KEY, TUNED_DEV_KEY, TUNED_INTERVAL_KEY, TUNED_KEY,
                              f1_macro_key, f1_micro_key, run_id, split_run_id)


def _rank_key(row: LeaderRow, select_by: str) -> tuple[float, float, float]:
    """A leaderboard row's place under select_by, lower first, by the records' one ranking rule (as the
    supervisor sorts summary.json)."""
    return rank_place(select_by, row.f1_primary, row.tuned_cv)


def merge_ranked(ranked: Sequence[LeaderRow], live: Sequence[LeaderRow], select_by: str) -> list[LeaderRow]:
    """summary.json's rows in the supervisor's order, with each live row placed before the first of them it
    outranks; the live rows sorted among themselves (by run id on a tie). A summary row keeps its place even
    where its numbers look out of order: the supervisor ranked it, the view only adds what it has not seen."""
    pending = sorted(live, key=lambda row: (_rank_key(row, select_by), row.run))
    out: list[LeaderRow] = []
    i = 0
    for row in ranked:
        while i < len(pending) and _rank_key(pending[i], select_by) < _rank_key(row, select_by):
            out.append(pending[i])
            i += 1
        out.append(row)
    return out + pending[i:]


def baseline_f1(summary: dict[str, Any], runs: dict[str, RunState], primary: float) -> float | None:
    """The baseline run's macro-F1 at the primary threshold: summary.json's, else its live best dev eval."""
    key = f1_macro_key(primary)
    baseline = summary.get("baseline")
    if isinstance(baseline, dict) and _num(baseline.get(key)) is not None:
        return _num(baseline.get(key))
    run_id = baseline.get("run") if isinstance(baseline, dict) and isinstance(baseline.get("run"), str) \
        else BASELINE_RUN
    run = runs.get(run_id)
    return run.best_dev.f1_primary if run and run.best_dev else None

def summary_final(summary: dict[str, Any]) -> dict[str, Any] | None:
    """summary.json's final result, when it has a test block."""
    final = summary.get("final")
    return final if isinstance(final, dict) and isinstance(final.get("test"), dict) else None

def leaderboard(summary: dict[str, Any], runs: dict[str, RunState], primary: float, select_by: str,
                target_f1: float | None) -> tuple[LeaderRow, ...]:
    """The supervisor's ranking from summary.json, with live dev evals for runs not in it.

    A summary row that is not an object with a run id is left out, and a run listed twice shows once.
    """
    primary = primary
    key, micro_key = f1_macro_key(primary), f1_micro_key(primary)
    target = _num(summary.get("target_f1"))
    target = target if target is not None else target_f1
    baseline = baseline_f1(summary, runs, primary)
    final = summary_final(summary)
    final_test = final["test"] if final else {}
    entries = summary.get("leaderboard")
    rows: list[LeaderRow] = []
    live_rows: list[LeaderRow] = []
    ranked: set[str] = set()
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or not _str(entry.get("run")) or entry["run"] in ranked:
            continue
        run_id = entry["run"]
        ranked.add(run_id)
        live = runs.get(run_id)
        phase, config = split_run_id(run_id)
        test = _num(final_test.get(key)) if final and final.get("run") == run_id else None
        if test is None and live and live.test:
            test = live.test.f1_primary
        meets = entry.get("meets_target")
        rows.append(LeaderRow(
            run_id, _int(entry.get("phase")) if _int(entry.get("phase")) is not None else phase,
            _str(entry.get("config")) or config, _num(entry.get(key)),
            _num(entry.get(f1_macro_key(SECONDARY_THRESHOLD))), _num(entry.get(micro_key)),
            _num(entry.get(TUNED_DEV_KEY)), _num(entry.get(TUNED_CV_KEY)), _num(entry.get("delta_vs_baseline")),
            meets if isinstance(meets, bool) else None,
            live.status if live else _str(entry.get("status"), "?"), test, "summary",
            vs_leader_text(entry.get("vs_leader"))))
    for run in runs.values():
        best = run.best_dev
        if run.run in ranked or best is None:
            continue
        f1 = best.f1_primary
        live_rows.append(LeaderRow(
            run.run, run.phase, run.config_name, f1, best.f1_05, best.micro_primary, best.tuned, best.tuned_cv,
            None if f1 is None or baseline is None else f1 - baseline,
            None if f1 is None or target is None else f1 >= target,
            run.status, run.test.f1_primary if run.test else None, "live"))
    return tuple(merge_ranked(rows, live_rows, select_by))

def vs_leader_text(paired: Any) -> str:
    """``≈ -0.004 [-0.015, +0.007]`` (tied: the 95 % interval holds 0) or ``-0.031 [-0.045, -0.018]``; "" when
    summary.json has no paired comparison for the row (the leader, an older supervisor, another dev subset)."""
    numbers = [_num(paired.get(k)) for k in ("delta", "low", "high")] if isinstance(paired, dict) else [None]
    if any(n is None for n in numbers):
        return ""
    delta, low, high = numbers
    return f"{'≈ ' if paired.get('tied') is True else ''}{delta:+.3f} [{low:+.3f}, {high:+.3f}]"


def final_result(summary: dict[str, Any], runs: dict[str, RunState], primary: float) -> FinalResult | None:
    """The final model's test numbers: summary.json's, else a run's live test eval."""
    final = summary_final(summary)
    if final is not None:
        test, key = final["test"], f1_macro_key(primary)
        mode = _str(final.get("mode"))
        members = final.get("members")
        return FinalResult(_str(final.get("run")), _str(final.get("config")), _num(test.get(key)),
                           _num(test.get(f1_macro_key(SECONDARY_THRESHOLD))), _num(test.get(TUNED_KEY)),
                           _num(test.get(f1_micro_key(primary))), mode if mode in FINAL_MODES else "",
                           tuple(dict.fromkeys(m["run"] for m in members if isinstance(m, dict)
                                               and _str(m.get("run")))) if isinstance(members, list) else (),
                           interval(test.get(TUNED_INTERVAL_KEY)))
    for run in runs.values():
        if run.test is not None:
            return FinalResult(run.run, run.config_name, run.test.f1_primary, run.test.f1_05, run.test.tuned,
                               run.test.micro_primary)
    return None


def seed_groups(summary: dict[str, Any], primary: float) -> tuple[LeaderRow, ...]:
    """summary.json's ``groups`` as leaderboard rows, one per (phase, config), best first: the means over seeds,
    n, the selection score's spread and the pooled paired Δs. Empty unless some phase runs several seeds: with
    one seed a config's group is its run, and the per-run leaderboard says it all."""
    groups = summary.get("groups")
    if not isinstance(groups, list) or not any(isinstance(g, dict) and (_int(g.get("planned")) or 1) > 1
                                               for g in groups):
        return ()
    key = f1_macro_key(primary)
    rows = []
    for g in groups:
        phase, config = (_int(g.get("phase")), _str(g.get("config"))) if isinstance(g, dict) else (None, "")
        if phase is None or not config:
            continue
        mean = {name: _num(g[name].get("mean")) if isinstance(g.get(name), dict) else None
                for name in (key, f1_macro_key(SECONDARY_THRESHOLD), f1_micro_key(primary), TUNED_DEV_KEY,
                             TUNED_CV_KEY)}
        chosen = g.get(_str(g.get("selection_key"), key))
        runs = tuple(r for r in g.get("runs") or () if isinstance(r, str))
        base = summary.get("baseline")
        base_f1 = _num(base.get(key)) if isinstance(base, dict) else None
        rows.append(LeaderRow(
            run_id(phase, config), phase, config, mean[key], mean[f1_macro_key(SECONDARY_THRESHOLD)],
            mean[f1_micro_key(primary)], mean[TUNED_DEV_KEY], mean[TUNED_CV_KEY],
            None if mean[key] is None or base_f1 is None else mean[key] - base_f1, None, _str(g.get("status"), "?"),
            None, "summary", vs_leader_text(g.get("vs_leader")), n=_int(g.get("n")), planned=_int(g.get("planned")),
            spread=_spread_text(chosen), members=runs, vs_baseline=vs_leader_text(g.get("vs_baseline"))))
    return tuple(rows)


def _spread_text(stats: Any) -> str:
    """``± 0.011 [0.385, 0.439]``; "" for one seed (no spread) or a missing block."""
    numbers = [_num(stats.get(k)) for k in ("std", "low", "high")] if isinstance(stats, dict) else [None]
    if any(n is None for n in numbers):
        return ""
    std, low, high = numbers
    return f"± {std:.3f} [{low:.3f}, {high:.3f}]"


def decisions(summary: dict[str, Any]) -> tuple[str, ...]:
    """summary.json's selection decisions, each a sentence (cockpit/judgements/seeds.py ``decision``)."""
    entries = summary.get("decisions")
    return tuple(_str(d.get("text")) for d in entries if isinstance(d, dict) and _str(d.get("text"))) \
        if isinstance(entries, list) else ()

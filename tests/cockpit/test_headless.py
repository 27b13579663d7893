"""The headless console: lines, progress and the final table, rendered from the TUI's PipelineState."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fake_pipeline as fp
from cockpit.headless import HeadlessConsole
from trainer.contract import PIPELINE_FILE, SUMMARY_FILE, PipelinePaths
from trainer.events import read_events


def events_in_order(folder: Path, drop: tuple[str, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    """Every event of a fake folder as the supervisor hands them over: by time, supervisor first on ties."""
    paths = PipelinePaths(folder)
    found = [(e["t"], 0, "pipeline", e) for e in read_events(folder / PIPELINE_FILE)]
    for file in paths.run_event_files():
        found += [(e["t"], 1, file.parent.name, e) for e in read_events(file)]
    found.sort(key=lambda item: item[:2])
    return [(source, {k: v for k, v in e.items() if k not in drop}) for _, _, source, e in found]


def console(**kwargs: Any) -> tuple[HeadlessConsole, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return HeadlessConsole(out=out, err=err, **kwargs), out, err


def replay(con: HeadlessConsole, folder: Path, drop: tuple[str, ...] = ()) -> None:
    for source, event in events_in_order(folder, drop):
        con.on_event(source, event)


def test_lines_for_a_whole_pipeline(finished_pipeline: Path) -> None:
    con, out, err = console()
    replay(con, finished_pipeline)
    text, alerts = out.getvalue(), err.getvalue()
    assert f"pipeline {fp.PIPELINE_ID} (quick) started: phases 1, 2, 3, 4 on cpu; ranking by dev F1@0.2" in text
    assert "== phase 1 (screen): p1-bce, p1-asl, p1-combined_07" in text
    assert "[p1-asl] launched on cpu (attempt 2, pid 40002)" in text
    assert "[p1-asl] restarting from step 20 (restart 1 of 2, attempt 2): stall" in text
    assert "[p1-asl] resumed from step 20" in text
    assert "[p1-bce] step 20 epoch 0.25 dev F1@0.2 " in text and "F1@0.5" in text and "µF1@0.2" in text
    assert "[p4-final] step 80 epoch 1.00 test (final) F1@0.2" in text and "tuned " in text
    assert "pipeline completed (exit 0)" in text
    assert "!! [p1-asl] stalled: silent 45 s (allowed 30 s); stacks in p1-asl/stall-1.txt" in alerts
    assert "!! [p1-combined_07] failed after 1 attempt(s)" in alerts
    assert "!! [p3-asl] warn grad_vanishing" in alerts
    assert "non-finite" in alerts and "stalled" not in text
    # The lines read the same state the TUI draws.
    snap = con.state.snapshot(0)
    assert snap.status == "completed" and snap.run("p1-asl").restarts == 1


def test_primary_threshold_of_the_preset_reaches_lines_and_table(runs_dir: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir, primary=0.3)
    con, out, _ = console()  # the preset's threshold arrives with pipeline_start
    replay(con, folder)
    lines = out.getvalue()
    assert "ranking by dev F1@0.3" in lines and "dev F1@0.3 0." in lines and "F1@0.2" not in lines
    con.final(json.loads((folder / SUMMARY_FILE).read_text()), folder)
    table = out.getvalue()[len(lines):]
    assert "f1_macro@0.3" in table and "F1@0.3" in table and "test F1@0.3" in table and "0.2" not in table
    assert "p3-asl" in table and "final (asl) on held-out test" in table and "@0.3 0." in table


def test_primary_from_the_constructor_when_events_do_not_name_it(runs_dir: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir, primary=0.3)
    con, out, _ = console(primary=0.3)
    replay(con, folder, drop=("primary_threshold",))
    assert "dev F1@0.3 0." in out.getvalue() and "F1@0.2" not in out.getvalue()


def test_final_uses_the_summarys_primary_threshold(finished_pipeline: Path, tmp_path: Path) -> None:
    summary = json.loads((finished_pipeline / SUMMARY_FILE).read_text())
    renamed = json.loads(json.dumps(summary).replace("@0.2", "@0.3"))
    renamed["primary_threshold"] = 0.3
    con, out, _ = console(primary=0.2)
    con.final(renamed, tmp_path)
    text = out.getvalue()
    assert "ranked by f1_macro@0.3" in text and "F1@0.2" not in text
    first = summary["leaderboard"][0]
    assert first["run"] in text and f"{first['f1_macro@0.2']:.4f}" in text
    assert f"summary: {tmp_path / SUMMARY_FILE}" in text and "report:" not in text


def test_progress_lines_come_from_the_state(live_pipeline: Path) -> None:
    now = [fp.T0 + 10_000.0]
    con, out, _ = console(progress_every_s=30.0, clock=lambda: now[0])
    replay(con, live_pipeline)
    out.truncate(0), out.seek(0)
    con.on_tick(object())  # the supervisor argument is not consulted
    assert out.getvalue() == ""  # not yet 30 s since the last progress
    now[0] += 31
    con.on_tick(None)
    lines = out.getvalue().splitlines()
    run = con.state.snapshot(now[0]).run("p3-asl")
    assert len(lines) == 1 and "[p3-asl] step 30/80 (38%)  33 samples/s  ETA 0m2" in lines[0]
    assert run.eta_s is not None and 25 <= run.eta_s <= 30
    con.on_event("p3-asl", {"v": 1, "t": fp.T0 + 9000, "type": "run_end", "status": "completed",
                            "reason": "done", "wall_s": 60.0, "best": {}})
    now[0] += 31
    out.truncate(0), out.seek(0)
    con.on_tick(None)
    assert "[p3-asl] completed: done (1m00s)" not in out.getvalue() and "step" not in out.getvalue()


def test_a_launched_run_without_steps_is_starting(tmp_path: Path) -> None:
    con, out, _ = console(progress_every_s=0.0)
    con.on_event("pipeline", {"v": 1, "t": 1.0, "type": "run_launch", "run": "p1-x", "device": "cpu", "pid": 5,
                              "attempt": 1})
    con.on_tick(None)
    assert "[p1-x] starting…" in out.getvalue()


def test_bad_events_and_a_wrong_typed_summary_never_raise(tmp_path: Path) -> None:
    con, out, err = console()
    for source, event in [("pipeline", {"type": "stall"}), ("pipeline", [1, 2]), ("p1-x", {"v": 1, "t": 1}),
                          ("p1-x", {"v": 1, "t": 1, "type": "eval"}), ("pipeline", {"v": 1, "t": 1, "type": "new"}),
                          ("pipeline", {"v": 1, "t": 1, "type": "phase_end", "phase": 1, "ranking": 5})]:
        con.on_event(source, event)  # type: ignore[arg-type]
    assert err.getvalue() == "" and con.state.skipped_events == 4
    for summary in ({"leaderboard": 5, "final": "x"},
                    {"leaderboard": [1, {"run": 2}, {"run": "p1-a"}, {"run": "p1-a"}]},
                    {"final": {"test": {"f1_macro@0.2": "high"}, "config": 3}}):
        con.final(summary, tmp_path)  # type: ignore[arg-type]
    assert out.getvalue().count("p1-a ") == 1 and "summary:" in out.getvalue()


def test_several_sources_get_one_block_and_source_evals_their_own_lines(runs_dir: Path) -> None:
    plain_con, plain_out, _ = console()
    replay(plain_con, fp.write_fake_pipeline(runs_dir / "plain"))
    con, out, _ = console()
    replay(con, fp.write_fake_pipeline(runs_dir / "multi", sources=fp.three_sources()))
    text = out.getvalue()
    assert text.count("data: taxonomy goemotions, 3 sources") == 1  # the first data event only
    assert ("[p1-bce]   isear (isear, data/isear.csv): train 200→220, dev 50, test 50, 7/28 labels, "
            "dropped 52 placeholder, 3 dup, 1 empty") in text
    assert "[p1-bce]   goemotions (goemotions, embedded): train 800→940, dev 120, test 120, 28/28 labels, " \
           "dropped 4 dup" in text
    assert "[p1-bce]   semeval2018-ec (semeval2018-ec, data/2018-E-c-En-train.txt): train 100→120" in text
    source_lines = [line for line in text.splitlines() if " source " in line]
    assert source_lines and all("(own dev split, " in line and " dev F1@" not in line for line in source_lines)
    assert any("[p1-bce] step 20 source isear (own dev split, 7 labels): F1@0.2 0." in line for line in source_lines)
    # Without its source lines and the data block, the output is the single-source one, line for line.
    stamp = len("00:00:00 ")
    rest = [line[stamp:] for line in text.splitlines()
            if " source " not in line and "data: taxonomy" not in line and "]   " not in line]
    assert rest == [line[stamp:] for line in plain_out.getvalue().splitlines()]


def test_one_source_with_nothing_dropped_gets_no_block(tmp_path: Path) -> None:
    only = fp.three_sources()[0] | {"dropped": {"placeholder": 0, "duplicate": 0}}
    con, out, _ = console()
    con.on_event("p1-x", {"v": 1, "t": 1.0, "type": "data", "train_size_before": 1, "train_size_after": 1,
                          "dev_size": 1, "test_size": 1, "per_class": [], "oversampling": {}, "sources": [only]})
    assert out.getvalue() == ""
    dropped = fp.three_sources()[0]
    con, out, _ = console()
    con.on_event("p1-x", {"v": 1, "t": 1.0, "type": "data", "train_size_before": 1, "train_size_after": 1,
                          "dev_size": 1, "test_size": 1, "per_class": [], "oversampling": {}, "sources": [dropped]})
    assert "[p1-x] data: 1 source\n" in out.getvalue() and "dropped 4 dup" in out.getvalue()


def table_row(text: str, run: str) -> dict[str, str]:
    """The cells of one run's row of the printed leaderboard, by column header."""
    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("┃│").replace("┃", "│").split("│")]

    lines = text.splitlines()
    header = cells(next(line for line in lines if line.startswith("┃ run ")))
    return dict(zip(header, cells(next(line for line in lines if line.startswith(f"│ {run} ")))))


def test_tuned_cv_in_lines_and_table_and_an_ensemble_final(runs_dir: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir, dev_tuned=True, select_by="tuned_cv", final_mode="ensemble")
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    con, out, _ = console(select_by="tuned_cv")  # the preset's select_by, as the CLI passes it
    replay(con, folder)
    lines = out.getvalue()
    assert "ranking by dev tuned cv" in lines and "== phase 2 ranking by dev tuned cv: " in lines
    assert "[p1-bce] step 20 epoch 0.25 dev F1@0.2 " in lines and "  tuned cv 0." in lines
    con.final(summary, folder)
    table = out.getvalue()[len(lines):]
    assert "ranked by tuned_cv_f1_macro" in table and "tuned cv" in table
    best = summary["leaderboard"][0]
    cells = table_row(table, best["run"])
    assert (cells["tuned"], cells["tuned cv"]) == (f"{best['tuned_f1_macro']:.4f}", f"{best['tuned_cv_f1_macro']:.4f}")
    assert "final (ensemble of p3-asl + p1-bce) on held-out test" in table


def test_an_older_summary_ranks_by_f1_and_shows_no_tuned_cv(finished_pipeline: Path) -> None:
    summary = json.loads((finished_pipeline / SUMMARY_FILE).read_text())
    for key in ("select_by", "selection_key"):
        summary.pop(key)
    for row in summary["leaderboard"]:
        row.pop("tuned_cv_f1_macro")
    con, out, _ = console(select_by="tuned_cv")
    con.final(summary, finished_pipeline)
    text = out.getvalue()
    assert "ranked by f1_macro@0.2" in text and "final (asl) on held-out test" in text
    assert table_row(text, "p3-asl")["tuned cv"] == "–"

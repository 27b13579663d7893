"""report.md and the model card: every label and metric key at the pipeline's primary threshold."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import fake_pipeline as fp
from cockpit.pipeline.report import leaderboard_markdown, model_card, write_report
from trainer.contract import (ENSEMBLE_MEAN_LOGIT, ENSEMBLE_RULES, FINAL_RUN, PLOT_FILES, SUMMARY_FILE, PipelinePaths,
                              f1_macro_key)


@pytest.mark.parametrize("primary", [0.2, 0.3])
def test_report_labels_and_keys_follow_the_summarys_primary_threshold(runs_dir: Path, primary: float) -> None:
    pytest.importorskip("matplotlib")
    folder = fp.write_fake_pipeline(runs_dir, primary=primary)
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    path = write_report(folder)
    assert path == PipelinePaths(folder).report
    text = path.read_text()
    other = "0.2" if primary == 0.3 else "0.3"
    assert f"dev {f1_macro_key(primary)}" in text and f"macro-F1@{primary:g}" in text
    assert f"micro-F1@{primary:g}" in text and f"@{other}" not in text
    assert f"threshold {primary:g}" in text
    first = summary["leaderboard"][0]
    assert f"| {first['run']} |" in text and f"{first[f1_macro_key(primary)]:.4f}" in text
    final_test = summary["final"]["test"][f1_macro_key(primary)]
    assert re.search(rf"\| test \| {final_test:.4f} \|", text)
    assert all((folder / name).is_file() and f"]({name})" in text for name in PLOT_FILES)


def test_leaderboard_markdown_reads_rows_at_the_primary_threshold() -> None:
    summary = {"primary_threshold": 0.3, "leaderboard": [
        {"run": "p1-a", "config": "a", "status": "completed", "f1_macro@0.3": 0.4567, "f1_macro@0.2": 0.1111}]}
    table = leaderboard_markdown(summary)
    assert "dev f1_macro@0.3" in table and "0.4567" in table and "0.1111" not in table


def test_model_card_uses_the_presets_primary_threshold(runs_dir: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir, primary=0.3)
    PipelinePaths(folder).run(FINAL_RUN).config.write_text('loss = "asl"\n')
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    preset = SimpleNamespace(name="quick", pipeline=SimpleNamespace(primary_threshold=0.3))
    card = model_card(folder, preset, summary["final"])
    test = summary["final"]["test"]
    assert f"{test[f1_macro_key(0.3)]:.4f} at 0.3" in card and "micro-F1@0.3" in card
    assert "@0.2" not in card and "at 0.2" not in card


def test_report_lists_the_data_sources_and_observed_rows_per_label(runs_dir: Path) -> None:
    pytest.importorskip("matplotlib")
    plain = write_report(fp.write_fake_pipeline(runs_dir / "plain")).read_text()
    text = write_report(fp.write_fake_pipeline(runs_dir / "multi", sources=fp.three_sources())).read_text()
    assert "## Data sources" not in plain and "observed rows" not in plain
    assert "## Data sources" in text and "taxonomy `goemotions`" in text and "From `p1-bce`'s data event" in text
    isear = next(line for line in text.splitlines() if line.startswith("| isear |"))
    cells = [cell.strip() for cell in isear.strip("|").split("|")]
    assert cells[:6] == ["isear", "isear", "200→220", "50", "50", "7/28"]
    assert float(cells[6]) > 0 and cells[7] == "p4-final" and cells[8] == "52 placeholder, 3 dup, 1 empty"
    assert "| goemotions | goemotions | 800→940 | 120 | 120 | 28/28 | – | – | 4 dup |" in text
    assert "| label | train rows before | after | observed rows |" in text and "| anger | " in text
    anger = next(line for line in text.splitlines() if line.startswith("| anger |"))
    assert anger.endswith("| 1280 |")
    # Source evals are no dev numbers of the report: everything above the new section is unchanged.
    assert text.split("## Data sources")[0] == plain.split("## Plots")[0]


def test_report_ranks_by_the_summarys_select_by_and_shows_tuned_cv(runs_dir: Path) -> None:
    pytest.importorskip("matplotlib")
    folder = fp.write_fake_pipeline(runs_dir, dev_tuned=True, select_by="tuned_cv")
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    text = write_report(folder).read_text()
    assert 'Ranked by dev `tuned_cv_f1_macro` (`select_by = "tuned_cv"`' in text
    header = next(line for line in text.splitlines() if line.startswith("| run | config |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns[6:8] == ["tuned (dev)", "tuned cv (dev)"]
    first = summary["leaderboard"][0]
    row = next(line for line in text.splitlines() if line.startswith(f"| {first['run']} |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[6:8] == [f"{first['tuned_f1_macro']:.4f}", f"{first['tuned_cv_f1_macro']:.4f}"]
    # An older summary (no select_by, no tuned_cv) was ranked by macro-F1 at the primary threshold.
    plain = write_report(fp.write_fake_pipeline(runs_dir / "plain")).read_text()
    assert 'Ranked by dev `f1_macro@0.2` (`select_by = "f1@primary"`' in plain
    assert "| – | +0.1237 |" in next(line for line in plain.splitlines() if line.startswith("| p3-asl |"))


def test_an_ensemble_model_card_and_report_list_the_members(runs_dir: Path) -> None:
    pytest.importorskip("matplotlib")
    folder = fp.write_fake_pipeline(runs_dir, dev_tuned=True, select_by="tuned_cv", final_mode="ensemble")
    PipelinePaths(folder).run("p3-asl").config.write_text('loss = "asl"\n')  # p1-bce's run.toml is missing
    record = json.loads((folder / SUMMARY_FILE).read_text())["final"]
    card = model_card(folder, SimpleNamespace(name="quick", pipeline=SimpleNamespace(primary_threshold=0.2)), record)
    assert "# GoEmotions emotion classifier (asl+bce)" in card
    assert "- Selection: runs and checkpoints ranked by dev `tuned_cv_f1_macro`." in card
    assert f"{record['dev']['tuned_cv_f1_macro']:.4f} cross-fitted" in card
    assert "averaging rule: mean of the members' sigmoid probabilities." in card
    assert "| member | config | best step | dev tuned cv | test macro-F1@0.2 | test macro-F1 tuned |" in card
    for member in record["members"]:
        assert (f"| {member['run']} | {member['config']} | {member['best_step']} | "
                f"{member['dev']['tuned_cv_f1_macro']:.4f} | {member['test']['f1_macro@0.2']:.4f} | "
                f"{member['test']['f1_macro_tuned']:.4f} |") in card
    test = record["test"]
    assert (f"| **ensemble** (p4-final) | asl+bce | – | {record['dev']['tuned_cv_f1_macro']:.4f} | "
            f"{test['f1_macro@0.2']:.4f} | {test['f1_macro_tuned']:.4f} |") in card
    assert "### p3-asl" in card and 'loss = "asl"' in card and "`p1-bce/run.toml` not found." in card
    report = write_report(folder).read_text()
    final_section = report.split("## Final model")[1]
    assert "| p3-asl | asl | 80 |" in final_section and "| **ensemble** (p4-final) |" in final_section
    assert "The members above, averaged by that rule" in final_section


def test_a_seed_ensemble_states_its_logit_rule_in_the_card_and_report(runs_dir: Path) -> None:
    """final = "seed_ensemble" exports an ensemble too: its members and its rule, read from the record's "rule"."""
    pytest.importorskip("matplotlib")
    folder = fp.write_fake_pipeline(runs_dir, final_mode="ensemble")
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    summary["final"] |= {"mode": "seed_ensemble", "rule": ENSEMBLE_RULES[ENSEMBLE_MEAN_LOGIT]}
    (folder / SUMMARY_FILE).write_text(json.dumps(summary))
    said = "averaging rule: sigmoid of the mean of the members' logits."
    card = model_card(folder, SimpleNamespace(name="quick", pipeline=SimpleNamespace(primary_threshold=0.2)),
                      summary["final"])
    assert said in card and all(f"| {m['run']} |" in card for m in summary["final"]["members"])
    assert said in write_report(folder).read_text().split("## Final model")[1]


def test_a_retrained_model_card_has_no_members(runs_dir: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir)
    PipelinePaths(folder).run(FINAL_RUN).config.write_text('loss = "asl"\n')
    record = json.loads((folder / SUMMARY_FILE).read_text())["final"]
    card = model_card(folder, SimpleNamespace(name="quick", pipeline=SimpleNamespace(primary_threshold=0.2)), record)
    assert "## Ensemble" not in card and "| member |" not in card and "cross-fitted" not in card
    assert "ranked by dev `f1_macro@0.2`" in card and "## Training config\n" in card and 'loss = "asl"' in card

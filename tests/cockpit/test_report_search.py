"""The report's "Search" section: the study's outcome, best trial, every trial and the best-so-far plot, from
pipeline.jsonl; no section for a pipeline without a search phase."""

from __future__ import annotations

from pathlib import Path

import fake_pipeline as fp
import fake_search
from cockpit.pipeline.report import write_report
from cockpit.pipeline.report_search import SEARCH_PLOT, search_section, study_of


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def test_the_search_section_lists_every_trial_and_the_best(runs_dir: Path) -> None:
    folder = fake_search.write_search_pipeline(runs_dir)
    lines = search_section(folder, _plt())
    text = "\n".join(lines)
    assert lines[0] == "## Search"
    assert "The study ended (n_trials): 4 complete, 2 pruned." in text
    assert "Best: trial 3 (`s-003`), objective 0.4759." in text
    assert "| gamma_neg | 4.1 |" in text and "| lr | 0.00012 |" in text
    assert "Importances (fANOVA over the complete trials): lr 0.58, gamma_neg 0.27, loss 0.15." in text
    assert "| 2 | s-002 | pruned | 0.2054 | 40 | lr=1.2e-05 loss=bce |" in text
    assert "| 3 | s-003 | complete | 0.4759 | – | lr=0.00012 loss=asl gamma_neg=4.1 |" in text
    assert sum(line.startswith("| ") and "| s-0" in line for line in lines) == 6
    assert f"![best so far]({SEARCH_PLOT})" in text
    assert (folder / SEARCH_PLOT).stat().st_size > 0


def test_no_search_section_without_a_search_phase(runs_dir: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir)
    assert study_of(folder) is None
    assert "## Search" not in write_report(folder).read_text()
    assert not (folder / SEARCH_PLOT).exists()

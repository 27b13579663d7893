"""Multi-source training and taxonomies through real subprocesses: goemo-train, goemo-predict, goemo-cockpit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY, run_train, train_env
from trainer.config import validate_config
from trainer.contract import contract_violation
from trainer.events import read_events
from trainer.sources import load_sources, training_data
from trainer.taxonomy import taxonomy_labels

pytestmark = pytest.mark.e2e
FIXTURES = REPO / "tests" / "fixtures" / "sources"
SOURCES = [
    {"kind": "goemotions"},
    {"kind": "semeval2018-ec", "path": str(FIXTURES / "semeval")},
    {"kind": "isear", "path": str(FIXTURES / "isear" / "isear.csv")},
    {"kind": "meld", "path": str(FIXTURES / "meld")},
    {"kind": "table", "name": "mine", "path": str(FIXTURES / "table" / "mine.csv"), "text": "sentence",
     "labels": "emotions"},
]


def toml_list(sources: list[dict]) -> str:
    return "[" + ", ".join("{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in s.items()) + "}"
                           for s in sources) + "]"


def predict(model, *texts: str) -> list[dict]:
    res = subprocess.run([sys.executable, "-m", "trainer.predict", "--model", str(model), "--json", *texts],
                         capture_output=True, text=True, env=train_env(), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


@pytest.mark.parametrize("taxonomy", ["ekman", "sentiment"])
def test_a_taxonomy_run_trains_exports_and_predicts_in_its_labels(tmp_path, taxonomy):
    out = tmp_path / "run"
    res = run_train(*TINY, "--max-train-samples", "96", "--max-steps", "4", "--batch-size", "16",
                    "--set", "export=true", "--set", f'taxonomy="{taxonomy}"', "--out", str(out))
    assert res.returncode == 0, res.stderr
    names = taxonomy_labels(taxonomy)
    events = read_events(out / "events.jsonl")
    data = next(e for e in events if e["type"] == "data")
    assert data["taxonomy"] == taxonomy and [r["label"] for r in data["per_class"]] == names
    final = next(e for e in events if e["type"] == "eval" and e.get("final") and e["split"] == "test")
    assert [r["label"] for r in final["per_class"]] == names
    assert json.loads((out / "export" / "thresholds.json").read_text())["labels"] == names
    if taxonomy == "ekman":  # goemo-predict reads the labels from the export; one taxonomy shows it (CI time)
        [row] = predict(out / "export", "thank you, this made my day")
        assert list(row["scores"]) == names and set(row["labels"]) <= set(names)


def test_every_source_kind_trains_together_with_masks_and_its_own_dev_eval(tmp_path):
    out = tmp_path / "run"
    res = run_train(*TINY, "--max-steps", "3", "--batch-size", "16", "--set", "max_train_samples=0",
                    "--set", f"sources={toml_list(SOURCES[1:] + [{'kind': 'goemotions', 'max_train_samples': 64}])}",
                    "--out", str(out))
    assert res.returncode == 0, res.stderr
    events = read_events(out / "events.jsonl")
    assert [contract_violation(e) for e in events if contract_violation(e)] == []
    data = next(e for e in events if e["type"] == "data")
    by_name = {s["name"]: s for s in data["sources"]}
    assert list(by_name) == ["semeval2018-ec", "isear", "meld", "mine", "goemotions"]
    # The event's numbers are what the library computes from the same files and config.
    cfg = validate_config({"sources": SOURCES[1:] + [{"kind": "goemotions", "max_train_samples": 64}],
                           "max_train_samples": 0, "model": "tiny-deberta", "max_eval_samples": 200}, "test")
    expected = training_data(load_sources(cfg), cfg).event
    assert data["sources"] == expected["sources"] and data["per_class"] == expected["per_class"]
    assert by_name["isear"]["observed_labels"] == ["anger", "disgust", "embarrassment", "fear", "joy", "remorse",
                                                   "sadness"]
    assert by_name["isear"]["dropped"]["placeholder"] > 0
    assert by_name["semeval2018-ec"]["dropped"]["unmapped_only"] > 0
    assert by_name["goemotions"]["rows"]["train_before"] == 64 and by_name["goemotions"]["rows"]["dev"] == 200
    # Every extra source with a dev split gets its own eval, over its observed labels only.
    source_evals = [e for e in events if e["type"] == "eval" and e.get("source")]
    assert {e["source"] for e in source_evals} == {"semeval2018-ec", "isear", "meld", "mine"}
    isear = next(e for e in source_evals if e["source"] == "isear")
    assert [r["label"] for r in isear["per_class"]] == isear["observed_labels"] == by_name["isear"]["observed_labels"]
    main_dev = [e for e in events if e["type"] == "eval" and not e.get("source") and not e.get("final")]
    assert len(main_dev) == 1 and main_dev[0]["split"] == "dev" and len(main_dev[0]["per_class"]) == 28


def test_a_bad_label_map_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "map.toml"
    bad.write_text('[labels]\njoy = ["joy"]\nfear = ["terror"]\n')
    sources = [{"kind": "table", "path": str(FIXTURES / "table" / "mine.csv"), "text": "sentence",
                "labels": "emotions", "label_map": str(bad)}]
    res = run_train(*TINY, "--max-steps", "1", "--set", f"sources={toml_list(sources)}", "--out", str(tmp_path / "r"))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:3: key 'fear': 'terror' is not one of our 28 labels" in lines[0], lines
    assert not (tmp_path / "r" / "events.jsonl").exists()


def cockpit(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=train_env())


@pytest.mark.parametrize(("args", "needle"), [
    ([], "key 'sources.1': source kind 'semeval2018-ec' needs a 'path' to your own copy"),
    (["--set", "sources.1.path=/no/such/E-c", "--set", f"sources.2.path={FIXTURES / 'isear' / 'isear.csv'}",
      "--set", f"sources.3.path={FIXTURES / 'meld'}"], "/no/such/E-c"),
])
def test_the_multi_source_template_needs_its_paths(tmp_path, args, needle):
    runs = tmp_path / "runs"
    res = cockpit("--headless", "--preset", "multi-source", "--runs-dir", str(runs), *args, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_a_multi_source_pipeline_reports_its_sources(tmp_path):
    runs = tmp_path / "runs"
    sources = [{"kind": "goemotions"}, {"kind": "isear", "path": str(FIXTURES / "isear" / "isear.csv")}]
    res = cockpit("--headless", "--preset", "smoke", "--runs-dir", str(runs), "--phases", "1,2,4",
                  "--configs", "bce,asl", "--set", f"sources={toml_list(sources)}")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    pdir = next(runs.iterdir())
    assert "isear" in res.stdout
    report = (pdir / "report.md").read_text()
    assert "isear" in report and "placeholder" in report
    for run in ("p1-bce", "p1-asl", "p4-final"):
        events = read_events(pdir / run / "events.jsonl")
        assert any(e["type"] == "eval" and e.get("source") == "isear" for e in events), run
    summary = json.loads((pdir / "summary.json").read_text())
    # Ranking and the final numbers stay on GoEmotions dev/test.
    final_test = next(e for e in read_events(pdir / "p4-final" / "events.jsonl")
                      if e["type"] == "eval" and e.get("final") and e["split"] == "test")
    assert summary["final"]["test"]["f1_macro@0.2"] == pytest.approx(final_test["f1_macro"]["0.2"])
    assert all(r["f1_macro@0.2"] is not None for r in summary["leaderboard"])

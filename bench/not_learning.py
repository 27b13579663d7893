"""The not_learning rule against real runs: which runs it fires on, at which eval, and each run's `learning`
figures per dev eval, from pipeline or run folders on disk (issue 20's tuning table).

    python bench/not_learning.py runs/<quick pipeline> runs/<plateau run> ...

A folder with `pipeline.jsonl` is read run by run; a folder with `events.jsonl` is one run. The rule is the
shipped one (cockpit/judgements/learning.py) unless --auc-floor / --gap-floor / --after-evals say otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cockpit.judgements.learning import LearningRule, LearningWatch  # noqa: E402
from cockpit.records import RunStart, decode_run  # noqa: E402
from trainer.contract import EVENTS_FILE, PIPELINE_FILE  # noqa: E402
from trainer.events import read_events  # noqa: E402


def run_folders(paths: list[Path]) -> list[Path]:
    out = []
    for path in paths:
        if (path / PIPELINE_FILE).is_file():
            out += sorted(p.parent for p in path.glob(f"*/{EVENTS_FILE}"))
        elif (path / EVENTS_FILE).is_file():
            out.append(path)
        else:
            raise SystemExit(f"{path}: neither a pipeline folder nor a run folder")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    default = LearningRule()
    parser.add_argument("--auc-floor", type=float, default=default.auc_floor)
    parser.add_argument("--gap-floor", type=float, default=default.gap_floor)
    parser.add_argument("--after-evals", type=int, default=default.after_evals)
    args = parser.parse_args()
    rule = LearningRule(after_evals=args.after_evals, auc_floor=args.auc_floor, gap_floor=args.gap_floor)
    print("| run | evals | AUC by eval | labels predicted | prior gap | F1@0.2 (last) | fires at |")
    print("| --- | ---: | --- | --- | --- | ---: | --- |")
    for folder in run_folders(args.folders):
        events = read_events(folder / EVENTS_FILE)
        watch = LearningWatch(rule)
        fired = next((v.step for v in (watch.observe(folder.name, e) for e in events) if v is not None), None)
        history = decode_run(events, folder.name)
        evals = [e for e in history.dev_evals() if e.learning is not None]
        if not evals:
            continue
        total = next((r.total_steps for r in history.records if isinstance(r, RunStart)), None)
        aucs = " ".join(f"{e.learning.auc_macro:.3f}" for e in evals)
        predicted = " ".join(str(e.learning.labels_predicted) for e in evals)
        gaps = " ".join(f"{e.learning.prior_gap:.3f}" for e in evals)
        last = evals[-1].f1(0.2)
        where = "–" if fired is None else f"step {fired} of {total}"
        print(f"| {folder.parent.name}/{folder.name} | {len(evals)} | {aucs} | {predicted} | {gaps} | "
              f"{last:.3f} | {where} |")


if __name__ == "__main__":
    main()

"""How stable is phase 1's ranking of the losses over seeds? (issue 19)

Reads a finished pipeline folder whose phase 1 ran every config with several seeds (``--set pipeline.seeds=3``)
and prints, as markdown for docs/results.md:
- each seed's ranking of the configs by the selection score, and how often a seed's ranking differs from the
  ranking by the mean (and Kendall's tau between seeds, scipy);
- every pair of configs: the pooled paired Δ of dev macro-F1 at the primary threshold (rows and seeds resampled,
  cockpit/judgements/seeds.py) and whether it survives (its 95 % interval excludes 0).

    python bench/rank_stability.py runs/<id>
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from scipy.stats import kendalltau

from cockpit.judgements.paired import best_dev_probs
from cockpit.judgements.seeds import pooled_delta
from trainer.contract import PipelinePaths, run_seed


def main(folder: Path) -> None:
    paths = PipelinePaths(folder)
    summary = json.loads(paths.summary.read_text())
    key, primary = summary["selection_key"], summary["primary_threshold"]
    groups = [g for g in summary["groups"] if g["phase"] == 1]
    configs = [g["config"] for g in groups]  # by the mean: the pipeline's own ranking
    board = {row["run"]: row for row in summary["leaderboard"]}
    seeds = sorted({run_seed(run) for g in groups for run in g["runs"]} - {None})
    print(f"pipeline `{folder.name}`, {len(configs)} configs × {len(seeds)} seeds, ranked by dev {key}\n")
    print("| seed | ranking (best first) | same as the mean's |")
    print("| --- | --- | --- |")
    orders = {}
    for seed in seeds:
        scores = {g["config"]: board.get(f"p1-{g['config']}-s{seed}", {}).get(key) for g in groups}
        order = sorted((c for c in configs if scores[c] is not None), key=lambda c: -scores[c])
        orders[seed] = order
        ranked = ", ".join(f"{c} {scores[c]:.4f}" for c in order)
        print(f"| {seed} | {ranked} | {'yes' if order == configs else 'no'} |")
    means = ", ".join(f"{g['config']} {g[key]['mean']:.4f} ± {g[key]['std'] or 0:.4f}" for g in groups)
    print(f"| mean | {means} | |\n")
    taus = [kendalltau([orders[a].index(c) for c in configs], [orders[b].index(c) for c in configs]).statistic
            for a, b in itertools.combinations(seeds, 2)]
    winners = {orders[s][0] for s in seeds}
    print(f"Kendall's tau between seeds' rankings: {', '.join(f'{t:.2f}' for t in taus)}; "
          f"seeds whose ranking differs from the mean's: {sum(orders[s] != configs for s in seeds)} of {len(seeds)}; "
          f"distinct winners: {', '.join(sorted(winners))}.\n")
    probs = {run: best_dev_probs(paths.run(run).root) for g in groups for run in g["runs"]}
    members = {g["config"]: [p for p in (probs[r] for r in g["runs"]) if p is not None] for g in groups}
    print(f"| pair | Δ dev {key} (second − first), pooled over seeds [95 %] | survives |")
    print("| --- | --- | --- |")
    for a, b in itertools.combinations(configs, 2):
        paired = pooled_delta(members[a], members[b], primary)
        if paired is None:
            print(f"| {a} vs {b} | – | – |")
            continue
        print(f"| {a} vs {b} | {paired.text()} | {'no (tied)' if paired.tied else 'yes'} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

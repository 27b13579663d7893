"""The end-of-pipeline report: report.md with PNG plots (matplotlib, no display), and the model card.

Every number here is read from files in the pipeline folder, so anyone can recompute it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cockpit.leaderboard import vs_leader_text
from cockpit.pipeline.report_search import search_section
from cockpit.records import read_run_history
from cockpit.records.evals import interval
from cockpit.state import PipelineState
from cockpit.snapshots import SECONDARY_THRESHOLD, dropped_text, f1_at, train_rows_text
from trainer.contract import (BASELINE_RUN, DEFAULT_PRIMARY_THRESHOLD, DEFAULT_SELECT_BY, ENSEMBLE_RULE, FINAL_DIR,
                              FINAL_LABELS_PLOT, FINAL_RUN, PLOT_FILES, PROBS_FILES, SELECT_BY, THRESHOLDS_FILE,
                              TUNED_CV_KEY, TUNED_DEV_KEY, TUNED_INTERVAL_KEY, TUNED_KEY, PipelinePaths, RunPaths,
                              f1_macro_key, f1_micro_key, selection_key, threshold_key)
from trainer.contract import SELECT_TUNED_CV
from trainer.events import read_events

CURVES_PLOT, PER_CLASS_PLOT, LABEL_COUNTS_PLOT = PLOT_FILES


def _threshold(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1 \
        else DEFAULT_PRIMARY_THRESHOLD


def summary_primary(summary: dict[str, Any]) -> float:
    """The primary threshold summary.json was ranked by (every F1@t label and key of the report)."""
    return _threshold(summary.get("primary_threshold"))


def summary_select_by(data: dict[str, Any]) -> str:
    """What ranked a summary.json or a final record (``select_by``); "f1@primary" when an older one says nothing."""
    value = data.get("select_by")
    return value if isinstance(value, str) and value in SELECT_BY else DEFAULT_SELECT_BY


def ranking_sentence(summary: dict[str, Any]) -> str:
    """One line naming the leaderboard key that ranked the runs, and what it means."""
    select_by, primary = summary_select_by(summary), summary_primary(summary)
    meaning = ("macro-F1 with per-label thresholds tuned on one stratified half of dev and scored on the other, "
               "then swapped; less optimistic than `tuned (dev)`" if select_by == SELECT_TUNED_CV
               else f"macro-F1 at threshold {threshold_key(primary)}")
    key = selection_key(select_by, primary)
    return f"Ranked by dev `{key}` (`select_by = \"{select_by}\"`), best first: {meaning}."


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if digits < 0 else f"{value:.{digits}f}"
    return str(value)


def _delta(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def leaderboard_markdown(summary: dict[str, Any]) -> str:
    primary = summary_primary(summary)
    key, micro, secondary = f1_macro_key(primary), f1_micro_key(primary), f1_macro_key(SECONDARY_THRESHOLD)
    lines = [f"| run | config | status | dev {key} | dev {f1_at(SECONDARY_THRESHOLD)} "
             f"| dev {f1_at(primary, 'micro-F1')} | tuned (dev) | tuned cv (dev) | Δ baseline | Δ reference "
             f"| target | Δ {f1_at(primary)} vs leader [95 %] |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for row in summary["leaderboard"]:
        lines.append(f"| {row['run']} | {row['config']} | {row['status']} | {_fmt(row.get(key))} | "
                     f"{_fmt(row.get(secondary))} | {_fmt(row.get(micro))} | {_fmt(row.get(TUNED_DEV_KEY))} | "
                     f"{_fmt(row.get(TUNED_CV_KEY))} | {_delta(row.get('delta_vs_baseline'))} | "
                     f"{_delta(row.get('delta_vs_reference'))} | {'yes' if row.get('meets_target') else 'no'} | "
                     f"{vs_leader_text(row.get('vs_leader')) or '–'} |")
    return "\n".join(lines)


def groups_markdown(summary: dict[str, Any]) -> list[str]:
    """The leaderboard by config over seeds (a preset's seeds = k): means, n, the selection score's sd and 95 %
    interval of the mean, and the pooled paired Δs; nothing when every config ran one seed."""
    groups = [g for g in summary.get("groups") or () if isinstance(g, dict)]
    if not any((g.get("planned") or 1) > 1 for g in groups):
        return []
    primary = summary_primary(summary)
    key = f1_macro_key(primary)
    lines = ["## By config over seeds (dev)", "",
             "Each config's seeds together: the mean over the seeds that finished, n (of the seeds planned), the "
             "selection score's standard deviation over seeds and the 95 % t-interval of its mean. Δ columns are "
             "paired bootstraps over the dev rows every seed scored, pooled over seeds (rows and seeds resampled); "
             "≈ marks an interval that holds 0.", "",
             f"| phase | config | n | dev {key} (mean) | tuned cv (mean) | selection score ± sd [95 %] "
             f"| Δ baseline [95 %] | Δ leader [95 %] | seeds |",
             "| ---: | --- | ---: | ---: | ---: | --- | --- | --- | --- |"]
    for g in groups:
        chosen = g.get(g.get("selection_key") or key) or {}
        spread = "–" if chosen.get("std") is None else (f"{chosen['mean']:.4f} ± {chosen['std']:.4f} "
                                                         f"[{chosen['low']:.4f}, {chosen['high']:.4f}]")
        n = f"{g.get('n')}" if g.get("n") == g.get("planned") else f"{g.get('n')}/{g.get('planned')}"
        lines.append(f"| {g.get('phase')} | {g.get('config')} | {n} | {_fmt((g.get(key) or {}).get('mean'))} | "
                     f"{_fmt((g.get(TUNED_CV_KEY) or {}).get('mean'))} | {spread} | "
                     f"{vs_leader_text(g.get('vs_baseline')) or '–'} | "
                     f"{vs_leader_text(g.get('vs_leader')) or '–'} | "
                     f"{', '.join(g.get('runs') or ())} |")
    return lines + [""]


def checkpoints_markdown(summary: dict[str, Any]) -> list[str]:
    """Each run's kept checkpoint against its next best dev eval (run_end's best_margin): the same question as
    between configs, asked inside a run."""
    lines = []
    for row in summary.get("leaderboard") or ():
        margin = row.get("best_margin") if isinstance(row, dict) else None
        if isinstance(margin, dict) and all(isinstance(margin.get(k), (int, float)) for k in ("delta", "low", "high")):
            verdict = "indistinguishable" if margin.get("tied") else "ahead outside the noise"
            interval = f"95% [{margin['low']:+.3f}, {margin['high']:+.3f}]"
            lines.append(f"- `{row['run']}`: step {row.get('best_step')} kept over step "
                         f"{margin.get('runner_up_step')} (Δ of the latter {margin['delta']:+.3f}, {interval}): "
                         f"{verdict}.")
    if not lines:
        return []
    return ["### Checkpoints", "", "Each run keeps its best dev eval; against the next best one, paired over the "
            "same dev rows (macro-F1 at the primary threshold). Where the two are indistinguishable the earlier "
            "or later step would have served as well.", "", *lines, ""]


def decisions_markdown(summary: dict[str, Any]) -> list[str]:
    """What the selection rule decided in each phase, and how sure the data is (cockpit/judgements/seeds.py)."""
    texts = [d["text"] for d in summary.get("decisions") or ()
             if isinstance(d, dict) and isinstance(d.get("text"), str)]
    if not texts:
        return checkpoints_markdown(summary)
    return ["## Decisions", "",
            "The rule: the higher mean of the selection score over seeds; on equal means the config better "
            "calibrated at the primary threshold; then the simpler loss (bce, asl, combined). Where Δ's interval "
            "holds 0 the data cannot tell the two apart and the choice is the rule's.", "",
            *[f"- {text}" for text in texts], "", *checkpoints_markdown(summary)]


def _interval(scores: dict[str, Any]) -> str:
    """`` [0.512, 0.538]``: the tuned macro-F1's 95 % bootstrap interval over the test rows, where there is one."""
    low_high = interval(scores.get(TUNED_INTERVAL_KEY))
    return "" if low_high is None else f" [{low_high[0]:.3f}, {low_high[1]:.3f}] (95 %)"


def _block(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {}


def ensemble_members(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The members of an ensemble final record (objects with a run id), or [] for any other final. Any mode whose
    export is an ensemble (``ensemble``, ``seed_ensemble``) has them: the publisher copies them from ensemble.json."""
    members = record.get("members")
    if not isinstance(members, list):
        return []
    return [m for m in members if isinstance(m, dict) and isinstance(m.get("run"), str)]


def ensemble_markdown(record: dict[str, Any], primary: float) -> list[str]:
    """For an ensemble final: its averaging rule and a table of its members' scores, then the ensemble's own
    row to compare with; [] for a retrained or reused final."""
    members = ensemble_members(record)
    if not members:
        return []
    key = f1_macro_key(primary)
    rule = record.get("rule") if isinstance(record.get("rule"), str) else ENSEMBLE_RULE
    lines = [f"Ensemble of {len(members)} runs, each at its best checkpoint; averaging rule: {rule}.", "",
             f"| member | config | best step | dev tuned cv | test {f1_at(primary, 'macro-F1')} "
             "| test macro-F1 tuned |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for member in members:
        dev, test = _block(member.get("dev")), _block(member.get("test"))
        step = member.get("best_step") if member.get("best_step") is not None else dev.get("step")
        lines.append(f"| {member['run']} | {member.get('config') or '–'} | {_fmt(step)} | "
                     f"{_fmt(dev.get(TUNED_CV_KEY))} | {_fmt(test.get(key))} | {_fmt(test.get(TUNED_KEY))} |")
    dev, test = _block(record.get("dev")), _block(record.get("test"))
    lines.append(f"| **ensemble** ({record.get('run') or FINAL_RUN}) | {record.get('config') or '–'} | – | "
                 f"{_fmt(dev.get(TUNED_CV_KEY))} | {_fmt(test.get(key))} | {_fmt(test.get(TUNED_KEY))} |")
    return lines + [""]


def _run_dirs(pipeline_dir: Path) -> list[Path]:
    return [events.parent for events in PipelinePaths(pipeline_dir).run_event_files()]


def _plot_curves(pipeline_dir: Path, plt: Any, primary: float) -> list[str]:
    written = []
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run_dir in _run_dirs(pipeline_dir):
        history = read_run_history(pipeline_dir, run_dir.name)
        steps = [(r.step, r.loss) for r in history.steps() if r.loss is not None]
        evals = [(r.step, r.f1(primary)) for r in history.dev_evals() if r.f1(primary) is not None]
        if steps:
            ax_loss.plot(*zip(*steps), label=run_dir.name, linewidth=0.8)
        if evals:
            ax_f1.plot(*zip(*evals), marker="o", label=run_dir.name)
    ax_loss.set(title="train loss", xlabel="optimizer step", yscale="log")
    ax_f1.set(title=f"dev {f1_at(primary, 'macro-F1')}", xlabel="optimizer step")
    for ax in (ax_loss, ax_f1):
        ax.grid(alpha=0.3)
        if ax.lines:  # a pipeline stopped before its first step has nothing to label
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(pipeline_dir / CURVES_PLOT, dpi=110)
    plt.close(fig)
    written.append(CURVES_PLOT)
    return written


def _final_per_class(pipeline_dir: Path) -> tuple[list[str], list[float | None], list[float | None]] | None:
    final = next(iter(read_run_history(pipeline_dir, FINAL_RUN).final_evals("test")), None)
    base = read_run_history(pipeline_dir, BASELINE_RUN).dev_evals()
    if final is None:
        return None
    labels = [p.label for p in final.per_class]
    base_f1 = [base[-1].label_f1.get(label, float("nan")) for label in labels] if base else [float("nan")] * len(labels)
    return labels, [p.f1 for p in final.per_class], base_f1


def _plot_final_labels(pipeline_dir: Path, plt: Any) -> list[str]:
    """The final model's test F1 per label at its tuned thresholds, with 95 % bootstrap intervals, worst first."""
    final = next(iter(read_run_history(pipeline_dir, FINAL_RUN).final_evals("test")), None)
    rows = sorted((r for r in final.per_label if r.f1 is not None), key=lambda r: r.f1) if final else []
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(12, 4.5))
    xs = list(range(len(rows)))
    f1 = [r.f1 for r in rows]
    below = [r.f1 - r.f1_low if r.f1_low is not None else 0.0 for r in rows]
    above = [r.f1_high - r.f1 if r.f1_high is not None else 0.0 for r in rows]
    ax.bar(xs, f1, yerr=[below, above], capsize=2, color="tab:green", ecolor="black")
    ax.set_xticks(xs, [f"{r.label} ({r.support})" for r in rows], rotation=70, fontsize=8)
    ax.set(title="final model on test, per label (thresholds tuned on dev; 95 % bootstrap interval; support)",
           ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(pipeline_dir / FINAL_LABELS_PLOT, dpi=110)
    plt.close(fig)
    return [FINAL_LABELS_PLOT]


def final_labels_markdown(pipeline_dir: Path) -> list[str]:
    """The "Final model per label" section: each label's tuned threshold, precision, recall, F1 with its 95 %
    bootstrap interval over the test rows, and support, worst F1 first; empty for trainers without the table."""
    final = next(iter(read_run_history(pipeline_dir, FINAL_RUN).final_evals("test")), None)
    if final is None or not final.per_label:
        return []
    rows = sorted(final.per_label, key=lambda r: (r.f1 if r.f1 is not None else -1.0, r.label))
    out = ["### Final model per label (test, thresholds tuned on dev)", "",
           "F1's 95 % interval resamples the test rows (1,000 bootstrap resamples); a rare label's interval is "
           "wide, so two labels or two models whose intervals overlap are not told apart by this split.", "",
           "| label | threshold | precision | recall | F1 | 95 % interval | support |",
           "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in rows:
        interval = f"[{_fmt(r.f1_low)}, {_fmt(r.f1_high)}]" if r.f1_low is not None else "–"
        out.append(f"| {r.label} | {_fmt(r.threshold)} | {_fmt(r.precision)} | {_fmt(r.recall)} | {_fmt(r.f1)} | "
                   f"{interval} | {r.support if r.support is not None else '–'} |")
    return out + [""]


def data_markdown(pipeline_dir: Path, primary: float) -> list[str]:
    """The "Data sources" section: the sources of the pipeline's first data event with each one's latest dev
    score, and train rows per label with the rows able to observe it; empty for trainers that list no sources.

    Read through the views' state, so report and dashboard pick the same data event and the same scores.
    """
    state = PipelineState(primary)
    for run_dir in _run_dirs(pipeline_dir):
        state.apply_batch(run_dir.name, read_events(RunPaths(run_dir).events))
    sources, labels = state.source_rows(), state.oversampling
    observed = any(row.observed is not None for row in labels)
    if not sources and not observed:
        return []
    taxonomy = f", taxonomy `{state.taxonomy}`" if state.taxonomy else ""
    parts = ["## Data sources", "", f"From `{state.oversampling_run}`'s data event{taxonomy}. Dev "
             f"{f1_at(primary, 'macro-F1')} is each source's latest score on its own dev split, over the labels it "
             "observes; it never ranks runs.", ""]
    if sources:
        parts += [f"| source | kind | train rows (before→after) | dev | test | observed labels "
                  f"| dev {f1_at(primary)} | scored by | dropped |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        parts += [f"| {r.name} | {r.kind} | {train_rows_text(r.train_before, r.train_after)} | {_fmt(r.dev)} | "
                  f"{_fmt(r.test)} | {r.observed_text} | {_fmt(r.dev_f1)} | {r.dev_f1_run or '–'} | "
                  f"{dropped_text(r.dropped)} |" for r in sources]
        parts.append("")
    if observed:
        parts += ["| label | train rows before | after | observed rows |", "| --- | ---: | ---: | ---: |"]
        parts += [f"| {r.label} | {r.before} | {r.after} | {_fmt(r.observed)} |" for r in labels]
        parts.append("")
    return parts


def write_report(pipeline_dir: Path) -> Path:
    """Write report.md and its PNGs from summary.json and the runs' events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = PipelinePaths(pipeline_dir)
    summary = json.loads(paths.summary.read_text())
    primary = summary_primary(summary)
    images = _plot_curves(pipeline_dir, plt, primary)
    per_class = _final_per_class(pipeline_dir)
    if per_class:
        labels, final_f1, base_f1 = per_class
        fig, ax = plt.subplots(figsize=(12, 4.5))
        xs = range(len(labels))
        bar = 0.4  # two bars side by side per label
        ax.bar([x - bar / 2 for x in xs], final_f1, width=bar, label=f"final (test, {f1_at(primary)})")
        ax.bar([x + bar / 2 for x in xs], base_f1, width=bar, label=f"{BASELINE_RUN} (dev, {f1_at(primary)})")
        ax.set_xticks(list(xs), labels, rotation=70, fontsize=8)
        ax.set(title="per-label F1: final model vs the Phase-1 BCE run")
        ax.legend()
        fig.tight_layout()
        fig.savefig(pipeline_dir / PER_CLASS_PLOT, dpi=110)
        plt.close(fig)
        images.append(PER_CLASS_PLOT)
    images += _plot_final_labels(pipeline_dir, plt)
    data, data_run = None, ""
    for run_dir in _run_dirs(pipeline_dir):
        data, data_run = read_run_history(pipeline_dir, run_dir.name).first_data(), run_dir.name
        if data:
            break
    if data:
        fig, ax = plt.subplots(figsize=(12, 4.5))
        names = [p.label for p in data.per_class]
        xs = range(len(names))
        ax.bar(list(xs), [p.after for p in data.per_class], label="after oversampling", color="tab:orange")
        ax.bar(list(xs), [p.before for p in data.per_class], label="before", color="tab:blue")
        ax.set_xticks(list(xs), names, rotation=70, fontsize=8)
        ax.set(title=f"label counts in {data_run}'s train set ({data.oversampling_rule}, "
                     f"factor {data.oversampling_factor})", yscale="log")
        ax.legend()
        fig.tight_layout()
        fig.savefig(pipeline_dir / LABEL_COUNTS_PLOT, dpi=110)
        plt.close(fig)
        images.append(LABEL_COUNTS_PLOT)
    final = summary.get("final")
    parts = [f"# Pipeline {summary['pipeline']} ({summary['preset']}): {summary['status']}", "",
             f"Primary metric: dev macro-F1 at threshold {threshold_key(primary)}. "
             f"Reference {summary['reference_f1']:.4f}, target {summary['target_f1']:.2f}, "
             f"baseline {summary['baseline']['run']}.", "", "## Leaderboard (dev)", "", ranking_sentence(summary), "",
             leaderboard_markdown(summary), "", *groups_markdown(summary), *decisions_markdown(summary)]
    if final:
        key, micro, secondary = f1_macro_key(primary), f1_micro_key(primary), f1_macro_key(SECONDARY_THRESHOLD)
        ensemble = ensemble_markdown(final, primary)
        origin = "The members above, averaged by that rule" if ensemble else \
            f"Config `{final['config']}`, weights from `{final.get('trained_in', final.get('run'))}`"
        parts += ["## Final model (held-out test, evaluated once)", "", *ensemble,
                  f"{origin}; thresholds tuned per label on dev (`{final['thresholds']}`).", "",
                  f"| split | {f1_at(primary, 'macro-F1')} | {f1_at(SECONDARY_THRESHOLD, 'macro-F1')} | macro-F1 tuned "
                  f"| {f1_at(primary, 'micro-F1')} |", "| --- | ---: | ---: | ---: | ---: |"]
        for split in ("dev", "test"):
            s = final.get(split) or {}
            parts.append(f"| {split} | {_fmt(s.get(key))} | {_fmt(s.get(secondary))} | "
                         f"{_fmt(s.get(TUNED_KEY))}{_interval(s)} | {_fmt(s.get(micro))} |")
        arrays = ", ".join(f"`{FINAL_DIR}/{name}`" for name in PROBS_FILES)
        parts += ["", f"Recompute: {arrays} with `{FINAL_DIR}/{THRESHOLDS_FILE}`.", ""]
        parts += final_labels_markdown(pipeline_dir)
    parts += search_section(pipeline_dir, plt)
    parts += data_markdown(pipeline_dir, primary)
    parts += ["## Plots", ""] + [f"![{name}]({name})" for name in images] + [""]
    path = paths.report
    path.write_text("\n".join(parts))
    return path


def _training_configs(pipeline_dir: Path, record: dict[str, Any]) -> list[str]:
    """The "Training config" section: the run.toml of the run the weights come from, or one per ensemble member
    (a member folder without its run.toml says so rather than costing the whole card)."""
    members = ensemble_members(record)
    if not members:
        run_toml = RunPaths(pipeline_dir / record["trained_in"]).config.read_text()
        return ["## Training config", "", "```toml", run_toml.strip(), "```", ""]
    parts = ["## Training configs (one per member)", ""]
    for member in members:
        path = RunPaths(pipeline_dir / member["run"]).config
        if path.is_file():
            body = ["```toml", path.read_text().strip(), "```"]
        else:
            body = [f"`{member['run']}/{path.name}` not found."]
        parts += [f"### {member['run']}", "", *body, ""]
    return parts


def model_card(pipeline_dir: Path, preset: Any, record: dict[str, Any]) -> str:
    """A short model card for final/: what was trained, on what, and how well it does on held-out test; for an
    ensemble, its averaging rule and each member's scores beside the ensemble's.

    Scores are read at the record's primary threshold, else the preset's (the keys final_scores wrote); the
    selection key is the record's select_by, else the preset's.
    """
    test, dev = record.get("test") or {}, record.get("dev") or {}
    pipeline = getattr(preset, "pipeline", None)
    primary = _threshold(record.get("primary_threshold", getattr(pipeline, "primary_threshold", None)))
    select_by = summary_select_by({"select_by": record.get("select_by", getattr(pipeline, "select_by", None))})
    key, micro, at = f1_macro_key(primary), f1_micro_key(primary), threshold_key(primary)
    secondary = f1_macro_key(SECONDARY_THRESHOLD)
    cross_fitted = (f", {dev[TUNED_CV_KEY]:.4f} cross-fitted (tuned on one half of dev, scored on the other)"
                    if isinstance(dev.get(TUNED_CV_KEY), float) else "")
    ensemble = ensemble_markdown(record, primary)
    return "\n".join([
        f"# GoEmotions emotion classifier ({record['config']})", "",
        f"Exported by goemo-cockpit pipeline `{pipeline_dir.name}` (preset `{preset.name}`).", "",
        "- Task: multi-label classification into the 28 GoEmotions labels (27 emotions + neutral).",
        "- Data: GoEmotions simplified (Demszky et al., ACL 2020), train split for training, dev for model "
        "selection and per-label threshold tuning, test evaluated once.",
        f"- Selection: runs and checkpoints ranked by dev `{selection_key(select_by, primary)}`.",
        f"- Test macro-F1: {_fmt(test.get(TUNED_KEY))}{_interval(test)} with the tuned thresholds, "
        f"{_fmt(test.get(key))} at {at}, {_fmt(test.get(secondary))} at {threshold_key(SECONDARY_THRESHOLD)}; "
        f"{f1_at(primary, 'micro-F1')} {_fmt(test.get(micro))}.",
        f"- Dev macro-F1: {_fmt(dev.get(TUNED_KEY))} tuned (optimistic: tuned on dev){cross_fitted}, "
        f"{_fmt(dev.get(key))} at {at}.",
        "- Use: `goemo-predict --model <this folder> \"some text\"`.",
        "- Limits: Reddit comments in English; rare labels (grief, pride, nervousness, relief) have little "
        "support and unstable scores; not for decisions about people.", "",
        *(["## Ensemble", "", *ensemble] if ensemble else []),
        *_training_configs(pipeline_dir, record),
    ])

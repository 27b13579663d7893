"""The end-of-pipeline report: report.md with PNG plots (matplotlib, no display), and the model card.

Every number here is read from files in the pipeline folder, so anyone can recompute it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.events import read_events


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if digits < 0 else f"{value:.{digits}f}"
    return str(value)


def _delta(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def leaderboard_markdown(summary: dict[str, Any]) -> str:
    key = f"f1_macro@{summary['primary_threshold']:g}"
    lines = [f"| run | config | status | dev {key} | dev F1@0.5 | dev micro-F1 | tuned (dev) | Δ baseline | Δ reference | target |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    micro = f"f1_micro@{summary['primary_threshold']:g}"
    for row in summary["leaderboard"]:
        lines.append(f"| {row['run']} | {row['config']} | {row['status']} | {_fmt(row.get(key))} | "
                     f"{_fmt(row.get('f1_macro@0.5'))} | {_fmt(row.get(micro))} | {_fmt(row.get('tuned_f1_macro'))} | "
                     f"{_delta(row.get('delta_vs_baseline'))} | {_delta(row.get('delta_vs_reference'))} | "
                     f"{'yes' if row.get('meets_target') else 'no'} |")
    return "\n".join(lines)


def _run_dirs(pipeline_dir: Path) -> list[Path]:
    return sorted(p.parent for p in pipeline_dir.glob("*/events.jsonl"))


def _plot_curves(pipeline_dir: Path, plt: Any) -> list[str]:
    written = []
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run_dir in _run_dirs(pipeline_dir):
        events = read_events(run_dir / "events.jsonl")
        steps = [(e["step"], e["loss"]) for e in events if e["type"] == "step" and e.get("loss") is not None]
        evals = [(e["step"], e["f1_macro"].get("0.2")) for e in events
                 if e["type"] == "eval" and e.get("split") == "dev" and not e.get("final")]
        if steps:
            ax_loss.plot(*zip(*steps), label=run_dir.name, linewidth=0.8)
        if evals:
            ax_f1.plot(*zip(*evals), marker="o", label=run_dir.name)
    ax_loss.set(title="train loss", xlabel="optimizer step", yscale="log")
    ax_f1.set(title="dev macro-F1@0.2", xlabel="optimizer step")
    for ax in (ax_loss, ax_f1):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(pipeline_dir / "curves.png", dpi=110)
    plt.close(fig)
    written.append("curves.png")
    return written


def _final_per_class(pipeline_dir: Path) -> tuple[list[str], list[float], list[float]] | None:
    final_events = read_events(pipeline_dir / "p4-final" / "events.jsonl")
    final = next((e for e in final_events if e["type"] == "eval" and e.get("final") and e["split"] == "test"), None)
    base_events = read_events(pipeline_dir / "p1-bce" / "events.jsonl")
    base = [e for e in base_events if e["type"] == "eval" and e.get("split") == "dev" and not e.get("final")]
    if final is None:
        return None
    labels = [p["label"] for p in final["per_class"]]
    base_f1 = [p["f1"] for p in base[-1]["per_class"]] if base else [float("nan")] * len(labels)
    return labels, [p["f1"] for p in final["per_class"]], base_f1


def write_report(pipeline_dir: Path) -> Path:
    """Write report.md and its PNGs from summary.json and the runs' events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = json.loads((pipeline_dir / "summary.json").read_text())
    images = _plot_curves(pipeline_dir, plt)
    per_class = _final_per_class(pipeline_dir)
    if per_class:
        labels, final_f1, base_f1 = per_class
        fig, ax = plt.subplots(figsize=(12, 4.5))
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], final_f1, width=0.4, label="final (test, F1@0.2)")
        ax.bar([x + 0.2 for x in xs], base_f1, width=0.4, label="p1-bce (dev, F1@0.2)")
        ax.set_xticks(list(xs), labels, rotation=70, fontsize=8)
        ax.set(title="per-label F1: final model vs the Phase-1 BCE run")
        ax.legend()
        fig.tight_layout()
        fig.savefig(pipeline_dir / "per_class_f1.png", dpi=110)
        plt.close(fig)
        images.append("per_class_f1.png")
    data = None
    for run_dir in _run_dirs(pipeline_dir):
        data = next((e for e in read_events(run_dir / "events.jsonl") if e["type"] == "data"), None)
        if data:
            break
    if data:
        fig, ax = plt.subplots(figsize=(12, 4.5))
        names = [p["label"] for p in data["per_class"]]
        xs = range(len(names))
        ax.bar(list(xs), [p["after"] for p in data["per_class"]], label="after oversampling", color="tab:orange")
        ax.bar(list(xs), [p["before"] for p in data["per_class"]], label="before", color="tab:blue")
        ax.set_xticks(list(xs), names, rotation=70, fontsize=8)
        ax.set(title=f"label counts in {run_dir.name}'s train set ({data['oversampling']['rule']}, "
                     f"factor {data['oversampling']['factor']})", yscale="log")
        ax.legend()
        fig.tight_layout()
        fig.savefig(pipeline_dir / "label_counts.png", dpi=110)
        plt.close(fig)
        images.append("label_counts.png")
    final = summary.get("final")
    parts = [f"# Pipeline {summary['pipeline']} ({summary['preset']}): {summary['status']}", "",
             f"Primary metric: dev macro-F1 at threshold {summary['primary_threshold']:g}. "
             f"Reference {summary['reference_f1']:.4f}, target {summary['target_f1']:.2f}, "
             f"baseline {summary['baseline']['run']}.", "", "## Leaderboard (dev)", "", leaderboard_markdown(summary), ""]
    if final:
        key = f"f1_macro@{summary['primary_threshold']:g}"
        parts += ["## Final model (held-out test, evaluated once)", "",
                  f"Config `{final['config']}`, weights from `{final['trained_in']}`; thresholds tuned per label on dev "
                  f"(`{final['thresholds']}`).", "",
                  "| split | macro-F1@0.2 | macro-F1@0.5 | macro-F1 tuned | micro-F1@0.2 |", "| --- | ---: | ---: | ---: | ---: |"]
        for split in ("dev", "test"):
            s = final.get(split) or {}
            parts.append(f"| {split} | {_fmt(s.get(key))} | {_fmt(s.get('f1_macro@0.5'))} | "
                         f"{_fmt(s.get('f1_macro_tuned'))} | {_fmt(s.get('f1_micro@0.2'))} |")
        parts += ["", "Recompute: `final/{dev,test}_probs.npy` and `final/{dev,test}_labels.npy` with "
                  "`final/thresholds.json`.", ""]
    parts += ["## Plots", ""] + [f"![{name}]({name})" for name in images] + [""]
    path = pipeline_dir / "report.md"
    path.write_text("\n".join(parts))
    return path


def model_card(pipeline_dir: Path, preset: Any, record: dict[str, Any]) -> str:
    """A short model card for final/: what was trained, on what, and how well it does on held-out test."""
    run_toml = (pipeline_dir / record["trained_in"] / "run.toml").read_text()
    test, dev = record.get("test") or {}, record.get("dev") or {}
    return "\n".join([
        f"# GoEmotions emotion classifier ({record['config']})", "",
        f"Exported by goemo-cockpit pipeline `{pipeline_dir.name}` (preset `{preset.name}`).", "",
        "- Task: multi-label classification into the 28 GoEmotions labels (27 emotions + neutral).",
        "- Data: GoEmotions simplified (Demszky et al., ACL 2020), train split for training, dev for model "
        "selection and per-label threshold tuning, test evaluated once.",
        f"- Test macro-F1: {_fmt(test.get('f1_macro_tuned'))} with the tuned thresholds, "
        f"{_fmt(test.get('f1_macro@0.2'))} at 0.2, {_fmt(test.get('f1_macro@0.5'))} at 0.5; "
        f"micro-F1@0.2 {_fmt(test.get('f1_micro@0.2'))}.",
        f"- Dev macro-F1: {_fmt(dev.get('f1_macro_tuned'))} tuned (optimistic: tuned on dev), "
        f"{_fmt(dev.get('f1_macro@0.2'))} at 0.2.",
        "- Use: `goemo-predict --model <this folder> \"some text\"`.",
        "- Limits: Reddit comments in English; rare labels (grief, pride, nervousness, relief) have little "
        "support and unstable scores; not for decisions about people.", "",
        "## Training config", "", "```toml", run_toml.strip(), "```", "",
    ])

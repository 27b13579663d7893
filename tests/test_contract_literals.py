"""Run-folder and pipeline-folder file names, event types and metric keys are spelt once, in trainer/contract.py.

Every other module of the trainer and the cockpit imports them; this test parses each module and
fails on a string literal (outside docstrings) that spells one of them, or on a short folder name
(``final``, ``latest``, …) used as a path component with ``/``. Event types and metric keys may also be
spelt in cockpit/records/, the layer that decodes events.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from tests.conftest import REPO
from trainer import contract

FILE_NAMES = {value for name, value in vars(contract).items()
              if name.isupper() and isinstance(value, str) and "." in value and not value.startswith(".")}
FILE_NAMES |= set(contract.PLOT_FILES) | set(contract.PROBS_FILES)
NAME_PATTERN = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, sorted(FILE_NAMES))) + r")(?![\w-])"
                          r"|(?<![\w-])" + re.escape(contract.STALL_PREFIX) + r"(\d|\*|$)")
FOLDER_NAMES = {contract.FINAL_DIR, contract.LATEST, contract.BEST, contract.CONTROL_DIR, contract.EXPORT_DIR,
                contract.CHECKPOINTS_DIR}
MODULES = sorted(p for folder in ("trainer", "cockpit") for p in (REPO / folder).rglob("*.py")
                 if p != REPO / "trainer" / "contract.py")


def _docstrings(tree: ast.AST) -> set[int]:
    """Strings that are statements of their own: docstrings, attribute docstrings."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}


def literal_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            hit = NAME_PATTERN.search(node.value)
            if hit or node.value == contract.CHECKPOINTS_DIR:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r} spells "
                             f"{hit.group(0) if hit else node.value!r}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right = node.right
            if isinstance(right, ast.Constant) and right.value in FOLDER_NAMES:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: path component {right.value!r}")
    return found


def test_the_contract_names_what_it_should() -> None:
    assert {"events.jsonl", "pipeline.jsonl", "summary.json", "trainer_state.json", "run.toml"} <= FILE_NAMES
    assert NAME_PATTERN.search("see runs/x/summary.json") and NAME_PATTERN.search("stall-3.txt")
    assert not NAME_PATTERN.search("stall-banner") and not NAME_PATTERN.search("my_summary.json.bak-x")


def test_file_names_are_literals_only_in_the_contract_module() -> None:
    assert len(MODULES) > 30
    offenders = [hit for path in MODULES for hit in literal_uses(path)]
    assert not offenders, "\n".join(offenders)


# -- event types and metric keys -------------------------------------------------------------------
EVENT_TYPES = {str(member) for member in contract.Event}
METRIC_KEYS = {contract.F1_MACRO, contract.F1_MICRO, contract.F1_WEIGHTED, contract.TUNED_CV_FIELD}
# Event types that are also ordinary words of the code: event fields (``e["step"]``, ``"device"``), activities
# (``what="eval"``, ``"checkpoint"``), a scheduler intent (``"stall"``, ``"restart"``), a tracker tag
# (``"alert"``, ``"data"``). These count only where they stand for an event type (see event_type_positions);
# every other event type and every metric key counts wherever it is spelt.
WORD_TYPES = {"step", "data", "device", "eval", "checkpoint", "activity", "alert", "stall", "restart"}
RECORDS = REPO / "cockpit" / "records"
# The bench scripts read events too (issue 18): they spell types and metric keys through the contract as well.
EVENT_MODULES = [p for p in MODULES if RECORDS not in p.parents] + sorted((REPO / "bench").glob("*.py"))


def _is_type_read(node: ast.AST) -> bool:
    """An expression that holds an event's type: ``kind``, ``type_``, ``e["type"]``, ``e.get("type")``."""
    if isinstance(node, ast.Name):
        return node.id in ("kind", "type_")
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "type"
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            and bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "type")


def _strings(node: ast.AST) -> list[ast.Constant]:
    """The string constants a comparison operand spells: itself, or the items of a tuple/list/set."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [n for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def event_type_positions(tree: ast.AST) -> set[int]:
    """Constants that stand where an event type goes: the first argument of ``emit``, a side of a comparison
    with an event's type, the value of a ``"type"`` key, and a dispatch table or tuple of event types."""
    spots: list[ast.Constant] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "emit":
                spots += _strings(node.args[0])
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_type_read(side) for side in sides):
                spots += [c for side in sides for c in _strings(side)]
        elif isinstance(node, ast.Dict):
            keys = [k for k in node.keys if k is not None]
            spots += [v for k, v in zip(node.keys, node.values)
                      if isinstance(k, ast.Constant) and k.value == "type" and isinstance(v, ast.Constant)]
            values = {k.value for k in keys if isinstance(k, ast.Constant)}
            if len(keys) == len(values) >= 2 and values <= EVENT_TYPES:
                spots += keys
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(values) == len(node.elts) and len(set(values)) >= 2 and set(values) <= EVENT_TYPES:
                spots += node.elts
    return {id(c) for c in spots}


def event_literals(path: Path, text: str | None = None) -> list[str]:
    """Where a module spells an event type or a metric key instead of naming the contract's constant."""
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text)
    skip, typed = _docstrings(tree), event_type_positions(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
            continue
        value = node.value
        if value in METRIC_KEYS or (value in EVENT_TYPES and (value not in WORD_TYPES or id(node) in typed)):
            what = "metric key" if value in METRIC_KEYS else "event type"
            found.append(f"{path.relative_to(REPO) if REPO in path.parents else path}:{node.lineno}: "
                         f"{value!r} spells the {what}")
    return found


def test_the_event_enum_is_the_tables_keys() -> None:
    """One member per event type of the two tables, no more; a member reads and writes as its plain string."""
    assert EVENT_TYPES == set(contract.TRAINER_EVENTS) | set(contract.PIPELINE_EVENTS)
    assert len(contract.Event) == len(EVENT_TYPES)
    assert all(isinstance(kind, contract.Event) for kind in contract.ALL_EVENTS)
    assert contract.Event.EVAL == "eval" and contract.ALL_EVENTS["eval"] is contract.ALL_EVENTS[contract.Event.EVAL]
    assert json.dumps({"type": contract.Event.RUN_DONE}) == '{"type": "run_done"}'
    assert f"{contract.Event.STEP}" == "step" and str(contract.Event.STEP) == "step"
    assert WORD_TYPES <= EVENT_TYPES and not METRIC_KEYS & EVENT_TYPES


def test_the_event_scan_sees_what_it_should() -> None:
    """Word-like event types count where they stand for a type, not as field names or activities."""
    code = (
        'emit("step", step=1, what="eval")\n'
        'if e.get("type") == "eval" or kind in ("alert", "x"): pass\n'
        'HANDLERS = {"data": f, "device": g}\n'
        'x = {"type": "checkpoint", "step": e["step"]}\n'
        'y = e["device"], scores["f1_macro"], select_by == "tuned_cv", state == "run_done"\n'
    )
    hits = [hit.split(": ", 1)[1] for hit in event_literals(Path("snippet.py"), code)]
    expected = [f"'{kind}' spells the event type" for kind in ("step", "eval", "alert", "data", "device",
                                                                "checkpoint", "run_done")]
    assert sorted(hits) == sorted(expected + ["'f1_macro' spells the metric key", "'tuned_cv' spells the metric key"])


def test_event_types_and_metric_keys_are_literals_only_in_the_contract_and_records() -> None:
    assert len(EVENT_MODULES) > 30
    offenders = [hit for path in EVENT_MODULES for hit in event_literals(path)]
    assert not offenders, "\n".join(offenders)

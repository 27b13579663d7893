"""Run-folder and pipeline-folder file names are spelt once, in trainer/contract.py.

Every other module of the trainer and the cockpit imports them; this test parses each module and
fails on a string literal (outside docstrings) that spells one of them, or on a short folder name
(``final``, ``latest``, …) used as a path component with ``/``.
"""

from __future__ import annotations

import ast
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

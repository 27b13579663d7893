"""docs/contract.md is checked against trainer/contract.py, so that the page cannot drift from the module.

The page's tables are parsed (markdown, one row per item, names in backticks), then compared with the module:
the event types and their required keys (trainer and supervisor tables apart), the exit codes, the file and
folder names (every ``*_FILE`` / ``*_DIR`` constant) and the environment variables (every ``ENV_*``). Adding an
event type, a required key, an exit code or a file name to the contract without documenting it fails here.
Stdlib only and no torch: trainer.contract imports nothing heavy.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainer import contract

DOC = Path(__file__).resolve().parents[1] / "docs" / "contract.md"
TICKED = re.compile(r"`([^`]*)`")


def section_table(text: str, heading: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first markdown table under the heading that starts with ``heading``."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if line.lstrip("#").strip().startswith(heading) and line.startswith("#")), None)
    assert start is not None, f"{DOC}: no heading '{heading}'"
    rows: list[list[str]] = []
    in_table = False
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            in_table = True
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif in_table:
            break
    assert len(rows) > 2, f"{DOC}: no table under '{heading}'"
    assert set(rows[1][0]) <= set("-: "), f"{DOC}: the table under '{heading}' has no header separator"
    return rows[2:]


def ticked(cell: str) -> list[str]:
    """The names a cell spells in backticks: `a`, `b` -> ["a", "b"]."""
    return TICKED.findall(cell)


def one_name(cell: str, heading: str) -> str:
    names = ticked(cell)
    assert len(names) == 1, f"{DOC}, table '{heading}': expected one `name` in {cell!r}"
    return names[0]


def event_table(text: str, heading: str) -> dict[str, list[str]]:
    """type -> required keys, as the page's table under ``heading`` lists them."""
    table: dict[str, list[str]] = {}
    for row in section_table(text, heading):
        kind = one_name(row[0], heading)
        assert kind not in table, f"{DOC}, table '{heading}': event type {kind!r} listed twice"
        table[kind] = ticked(row[1])
    return table


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("heading, contract_table", [
    ("Trainer events", contract.TRAINER_EVENTS),
    ("Supervisor events", contract.PIPELINE_EVENTS),
])
def test_every_event_type_is_documented_with_exactly_its_required_keys(
        doc: str, heading: str, contract_table: dict[str, tuple[str, ...]]) -> None:
    documented = event_table(doc, heading)
    assert sorted(documented) == sorted(contract_table), (
        f"{DOC}, '{heading}': undocumented {sorted(set(contract_table) - set(documented))}, "
        f"not in the contract {sorted(set(documented) - set(contract_table))}")
    for kind, keys in contract_table.items():
        assert len(documented[kind]) == len(set(documented[kind])), f"{DOC}: {kind}: a key listed twice"
        assert set(documented[kind]) == set(keys), (
            f"{DOC}: {kind}: undocumented required keys {sorted(set(keys) - set(documented[kind]))}, "
            f"keys the contract does not require {sorted(set(documented[kind]) - set(keys))}")


def test_the_envelope_and_schema_version_are_documented(doc: str) -> None:
    events = doc.split("## Events", 1)[1].split("###", 1)[0]
    for key in contract.ENVELOPE:
        assert f"`{key}`" in events, f"{DOC}: the envelope key {key!r} is not named under '## Events'"
    assert f"`SCHEMA_VERSION` = {contract.SCHEMA_VERSION}" in events


def test_every_exit_code_is_documented_with_its_value(doc: str) -> None:
    codes = {name: value for name, value in vars(contract).items() if name.startswith("EXIT_")}
    documented = {}
    for row in section_table(doc, "Exit codes"):
        documented[one_name(row[1], "Exit codes")] = int(row[0])
    assert documented == codes


def test_every_file_and_folder_name_is_documented(doc: str) -> None:
    names = {name: value for name, value in vars(contract).items()
             if re.fullmatch(r"[A-Z0-9_]+_(FILE|DIR)", name) and isinstance(value, str)}
    documented = {one_name(row[0], "File and folder names"): one_name(row[1], "File and folder names")
                  for row in section_table(doc, "File and folder names")}
    assert documented == names


def test_every_environment_variable_is_documented(doc: str) -> None:
    names = {name: value for name, value in vars(contract).items() if name.startswith("ENV_")}
    documented = {one_name(row[0], "Environment"): one_name(row[1], "Environment")
                  for row in section_table(doc, "Environment")}
    assert documented == names


def test_the_parser_reads_what_a_reader_sees() -> None:
    text = "# T\n\n## Trainer events (x)\n\n| type | required keys |\n| --- | --- |\n| `a` | `k`, `l` |\n\nprose\n"
    assert event_table(text, "Trainer events") == {"a": ["k", "l"]}

"""The wheel ships every package of the checkout: `pip install .` (the README's quick start) runs the
installed copy, not this folder, so a package left out of pyproject.toml is an ImportError for users only."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts)
             for folder in ("cockpit", "trainer") for init in (REPO / folder).rglob("__init__.py")}
    assert found - {"cockpit.presets"} <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"

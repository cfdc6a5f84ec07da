"""pyproject.toml and environment.yml list the same packages with the same version bounds."""

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).parents[1]


def normalize(requirement: str) -> tuple[str, str]:
    requirement = requirement.split(";")[0].strip()
    match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", requirement)
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(3).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(r for r in extra if not r.startswith("fedmed_lab"))
    return dict(normalize(r) for r in requirements)


def environment_requirements() -> dict[str, str]:
    entries = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.match(r"^\s+-\s+([^#]+?)\s*$", line)
        if not match or match.group(1).startswith(("-e", "pip:")) or match.group(1) in ("pip",):
            continue
        name, spec = normalize(match.group(1))
        if name != "python":
            entries[name] = spec
    return entries


def test_environment_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_python_floor_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    assert "  - python>=3.10" in (ROOT / "environment.yml").read_text()

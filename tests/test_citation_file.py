"""CITATION.cff: the knowledge base as a whole, citable, and true to conf.py."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import DOCS, ROOT

CFF = ROOT / "CITATION.cff"


def conf_values() -> dict[str, object]:
    """docs/conf.py's values, as a local build (not Read the Docs) sees them."""
    values: dict[str, object] = {"__file__": str(DOCS / "conf.py")}
    exec((DOCS / "conf.py").read_text(), values)
    return values


def test_the_citation_file_is_valid_cff() -> None:
    cffconvert = Path(sys.executable).with_name("cffconvert")
    result = subprocess.run(
        [str(cffconvert), "--validate", "-i", str(CFF)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid according to schema version 1.2.0" in result.stdout


def test_the_citation_file_agrees_with_the_site(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("READTHEDOCS_CANONICAL_URL", raising=False)
    cff = yaml.safe_load(CFF.read_text())
    conf = conf_values()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cff["title"] == conf["project"]
    assert cff["authors"] == [{"name": conf["author"]}]
    assert cff["license"] == pyproject["project"]["license"]
    assert cff["url"] == conf["html_baseurl"]

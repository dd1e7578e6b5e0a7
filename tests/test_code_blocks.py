"""Every YAML, JSON, Python and shell block in the essays is valid."""

from __future__ import annotations

import json
import pickle
import subprocess
from typing import TYPE_CHECKING

import pytest
import yaml
from docutils import nodes

from conftest import ESSAYS, Site

if TYPE_CHECKING:
    from conftest import Essay

SHELLS = {"bash", "sh", "shell"}
CHECKED = {"yaml", "json", "python", *SHELLS}


def problem(language: str, code: str) -> str | None:
    """Why *code* is not valid *language*, or ``None`` when it is."""
    try:
        if language == "yaml":
            list(yaml.safe_load_all(code))
        elif language == "json":
            json.loads(code)
        elif language == "python":
            compile(code, "<essay>", "exec")
        elif language in SHELLS:
            result = subprocess.run(
                ["bash", "-n"], input=code, capture_output=True, text=True, check=False
            )
            if result.returncode:
                return result.stderr.strip()
    except (yaml.YAMLError, ValueError, SyntaxError) as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("yaml", "a: [1, 2"),
        ("json", "{'single': 'quotes'}"),
        ("python", "def f(:\n  pass"),
        ("bash", "if true; then echo"),
    ],
)
def test_the_checker_rejects_invalid_code(language: str, code: str) -> None:
    assert problem(language, code) is not None


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_code_blocks_are_valid(site: Site, essay: Essay) -> None:
    doctree = pickle.loads((site.doctrees / f"{essay.docname}.doctree").read_bytes())
    failures = []
    for block in doctree.findall(nodes.literal_block):
        language = block.get("language", "")
        if language not in CHECKED:
            continue
        reason = problem(language, block.astext())
        if reason:
            failures.append(f"{essay.path}:{block.line}: {language}: {reason}")
    assert not failures, "\n".join(failures)

"""The noxfile installs missing system tools, or stops with one clear line, and
builds through the staged-build tool."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noxfile", ROOT / "noxfile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["noxfile"] = module
    spec.loader.exec_module(module)
    return module


class Stop(Exception):
    pass


class FakeSession:
    def __init__(self) -> None:
        self.runs: list[tuple[str, ...]] = []
        self.logs: list[str] = []

    def run(self, *args: str, **kwargs: Any) -> None:
        self.runs.append(args)

    def log(self, message: str) -> None:
        self.logs.append(message)

    def error(self, message: str) -> None:
        raise Stop(message)


def test_nothing_happens_when_every_tool_is_present(
    noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(noxfile, "_present", lambda probe: True)
    session = FakeSession()
    noxfile.ensure_system_tools(session, *noxfile.PDF, *noxfile.BROWSER)
    assert session.runs == []


def test_without_root_or_sudo_it_stops_with_one_line(
    noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(noxfile, "_present", lambda probe: probe != "dot")
    monkeypatch.setattr(noxfile.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(noxfile.shutil, "which", lambda name: None)
    with pytest.raises(Stop) as stop:
        noxfile.ensure_system_tools(FakeSession(), *noxfile.DIAGRAMS)
    message = str(stop.value)
    assert message == (
        "Missing system packages; install them with: sudo apt-get install graphviz"
    )


def test_as_root_it_installs_the_missing_packages(
    noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(noxfile, "_present", lambda probe: probe not in {"chromium"})
    monkeypatch.setattr(noxfile.os, "geteuid", lambda: 0)
    monkeypatch.setattr(noxfile.shutil, "which", lambda name: f"/usr/bin/{name}")
    session = FakeSession()
    noxfile.ensure_system_tools(session, *noxfile.PDF, *noxfile.BROWSER)
    assert session.logs == ["Installing system packages: chromium"]
    assert session.runs[0] == ("apt-get", "update", "-qq")
    assert session.runs[1][-2:] == ("chromium", "-qq")


def test_every_probe_is_satisfied_once_the_tools_are_installed(
    noxfile: ModuleType,
) -> None:
    """`nox -s tests` installs every system tool before the tests run, so a probe
    that still fails names a file its package does not ship: the session would
    reinstall on every run, or stop a non-root user for nothing."""
    missing = [
        (name, probe)
        for name, (probes, _package) in noxfile.SYSTEM_TOOLS.items()
        for probe in probes
        if not noxfile._present(probe)
    ]
    assert missing == []


def test_builds_are_staged_and_published_by_the_tool(
    noxfile: ModuleType, tmp_path: Path
) -> None:
    """The sessions build through tools/staged_build.py (tested on its own in
    test_staged_build.py), with the reproducible dates and the check given."""
    session = FakeSession()
    source, target, doctrees = tmp_path / "src", tmp_path / "html", tmp_path / "dt"
    noxfile.build_staged(
        session,
        source,
        target,
        doctrees,
        "-nW",
        "-b",
        "epub",
        check="epubcheck {output}",
    )
    assert session.runs == [
        (
            "python",
            str(ROOT / "tools" / "staged_build.py"),
            str(target),
            str(doctrees),
            "--check",
            "epubcheck {output}",
            "--",
            "-nW",
            "-b",
            "epub",
            str(source),
        )
    ]

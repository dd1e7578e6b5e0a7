"""The essay domain: what it stores, incremental rebuilds and parallel reads."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from conftest import file_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from sphinx.testing.util import SphinxTestApp

SITE = "essays-site"


def warnings(app: SphinxTestApp) -> list[str]:
    """Build warnings, without the node re-registration notices that every
    second app in one process prints (a sphinx.testing artefact)."""
    lines = app.warning.getvalue().splitlines()
    return [line for line in lines if "is already registered" not in line]


def essays(app: SphinxTestApp) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = app.env.domains["essay"].data["essays"]
    return data


@pytest.fixture
def site_copy(rootdir: Path, tmp_path: Path) -> Path:
    srcdir = tmp_path / "src"
    shutil.copytree(rootdir / f"test-{SITE}", srcdir)
    return srcdir


@pytest.mark.sphinx("html", testroot=SITE, freshenv=True)
def test_domain_stores_each_essay(app: SphinxTestApp) -> None:
    app.build()
    assert warnings(app) == []
    one = essays(app)["essays/observability/one"]
    assert one["title"] == "Essay One"
    assert one["tags"] == ["tracing", "cost"]
    assert one["terms"] == ["alpha", "beta"]
    assert one["links"] == ["essays/security/four"]
    assert one["minutes"] == 1
    four = essays(app)["essays/security/four"]
    assert four["links"] == ["essays/observability/one"]
    assert sorted(essays(app)) == [
        f"essays/{topic}/{slug}"
        for topic, slug in [
            ("observability", "one"),
            ("observability", "three"),
            ("observability", "two"),
            ("security", "five"),
            ("security", "four"),
            ("security", "six"),
        ]
    ]


def test_incremental_build_follows_changed_tags(
    make_app: type[SphinxTestApp], site_copy: Path
) -> None:
    app = make_app("html", srcdir=site_copy)
    app.build()
    essay = site_copy / "essays/observability/two.md"
    essay.write_text(essay.read_text().replace("tags: [tracing]", "tags: [logging]"))

    again = make_app("html", srcdir=site_copy)
    again.build()
    assert essays(again)["essays/observability/two"]["tags"] == ["logging"]
    incremental = (again.outdir / "essay-tags.html").read_text()
    # Essay One shows related essays that depend on Two's tags: it was rewritten.
    one = (again.outdir / "essays/observability/one.html").read_text()

    fresh_src = site_copy.parent / "fresh"
    shutil.copytree(site_copy, fresh_src, ignore=shutil.ignore_patterns("_build"))
    fresh = make_app("html", srcdir=fresh_src, freshenv=True)
    fresh.build()
    assert incremental == (fresh.outdir / "essay-tags.html").read_text()
    assert one == (fresh.outdir / "essays/observability/one.html").read_text()


def test_incremental_build_forgets_a_deleted_essay(
    make_app: type[SphinxTestApp], site_copy: Path
) -> None:
    app = make_app("html", srcdir=site_copy)
    app.build()
    (site_copy / "essays/security/six.md").unlink()
    again = make_app("html", srcdir=site_copy)
    again.build()
    assert "essays/security/six" not in essays(again)
    assert "Essay Six" not in (again.outdir / "essay-tags.html").read_text()
    assert "Essay Six" not in (again.outdir / "essays/security/index.html").read_text()


def output_files(outdir: Path) -> dict[str, bytes]:
    """The built files, without Sphinx's doctree cache."""
    return {
        name: data
        for name, data in file_bytes(outdir).items()
        if not name.startswith(".doctrees/")
    }


def test_parallel_build_is_byte_identical_to_serial(
    make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    outputs = []
    for jobs in (1, 2):
        srcdir = tmp_path / f"src-{jobs}"
        shutil.copytree(rootdir / f"test-{SITE}", srcdir)
        app = make_app("html", srcdir=srcdir, parallel=jobs, freshenv=True)
        app.build()
        assert warnings(app) == []
        outputs.append(output_files(app.outdir))
    serial, parallel = outputs
    assert serial.keys() == parallel.keys()
    differing = [name for name in serial if serial[name] != parallel[name]]
    assert differing == []

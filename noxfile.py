"""Every task for Infrastructure Essays, one nox session each.

    nox -s live      build, serve at http://127.0.0.1:8000 and rebuild on save
    nox -s tests     the whole test suite (builds the site and the PDF itself)
    nox -s html      docs/_build/html, with -nW
    nox -s pdf       docs/_build/pdf/infrastructure-essays.pdf, with XeLaTeX
    nox -s epub      docs/_build/epub/InfrastructureEssays.epub, checked by epubcheck
    nox -s lint      ruff, mypy, codespell, the essay standard, the sources report
    nox -s sources   the sources not checked for a year, with who cites them
    nox -s bench     build benchmarks, 100 and 1,000 essays, ours against the floor
    nox -s bench-10k the same at 10,000 essays (about an hour)
    nox -s linkcheck check every external link (needs a network; not in CI)
    nox -s new -- "Title" --topic observability   create an essay file

Sessions that need system tools (Graphviz, TeX Live, Chromium) install the
Debian packages that are missing when they can (as root, or with passwordless
sudo), and otherwise stop with one line naming what to install.
Every session passes ``session.posargs`` through to the tool it runs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import types
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent


def _load_tool(name: str) -> types.ModuleType:
    """A module of tools/, which the sessions also run as scripts."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Staged builds and one-step publishing (tools/staged_build.py).
staged_build = _load_tool("staged_build")

DOCS = ROOT / "docs"
BUILD = DOCS / "_build"
PYPROJECT = nox.project.load_toml("pyproject.toml")

#: What each system tool is, how to tell it is there, and its Debian package.
#: Debian's epubcheck is a jar; /usr/bin/epubcheck needs binfmt-support.
EPUBCHECK_JAR = "/usr/share/java/epubcheck.jar"
#: A probe is a command on PATH, or a file that must exist.
SYSTEM_TOOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "graphviz": (("dot",), "graphviz"),
    "xelatex": (("xelatex",), "texlive-xetex"),
    "latexmk": (("latexmk",), "latexmk"),
    "xindy": (("xindy",), "xindy"),
    "latex-recommended": (
        ("/usr/share/texlive/texmf-dist/tex/latex/upquote/upquote.sty",),
        "texlive-latex-recommended",
    ),
    "latex-extra": (
        ("/usr/share/texlive/texmf-dist/tex/latex/fncychap/fncychap.sty",),
        "texlive-latex-extra",
    ),
    "latex-fonts": (
        ("/usr/share/texlive/texmf-dist/fonts/afm/adobe/zapfding/pzdr.afm",),
        "texlive-fonts-recommended",
    ),
    "freefont": (
        ("/usr/share/fonts/opentype/freefont/FreeSerif.otf",),
        "fonts-freefont-otf",
    ),
    "tex-gyre": (("/usr/share/texmf/tex/latex/tex-gyre/tgtermes.sty",), "tex-gyre"),
    "chromium": (("chromium",), "chromium"),
    # npm installs the page checkers of package.json (HTML_CodeSniffer, the
    # Nu Html Checker); the checker is a jar, run by Java.
    "npm": (("npm",), "npm"),
    "java": (("java",), "default-jre-headless"),
    # What the essays' examples are checked with (tests/examples).
    "promtool": (("promtool",), "prometheus"),
    "prometheus": (("prometheus",), "prometheus"),
    "amtool": (("amtool",), "prometheus-alertmanager"),
    "postgresql": (("/usr/lib/postgresql/*/bin/postgres",), "postgresql"),
    "pgbackrest": (("pgbackrest",), "pgbackrest"),
    "jq": (("jq",), "jq"),
    "ssh-keygen": (("ssh-keygen",), "openssh-client"),
    "openssl": (("openssl",), "openssl"),
    "etcd": (("/usr/bin/etcd",), "etcd-server"),
    "haproxy": (("/usr/sbin/haproxy",), "haproxy"),
    "epubcheck": (("java", EPUBCHECK_JAR), "epubcheck"),
}
DIAGRAMS = ("graphviz",)
PDF = (
    "graphviz",
    "xelatex",
    "latexmk",
    "xindy",
    "latex-recommended",
    "latex-extra",
    "latex-fonts",
    "freefont",
    "tex-gyre",
)
BROWSER = ("chromium", "npm", "java")
EXAMPLES = (
    "promtool",
    "prometheus",
    "amtool",
    "postgresql",
    "pgbackrest",
    "jq",
    "ssh-keygen",
    "openssl",
    "etcd",
    "haproxy",
)
EPUB = ("graphviz", "epubcheck")
EPUB_FILE = "InfrastructureEssays.epub"
#: What Sphinx's generated latex/Makefile exports before it runs latexmk.
LATEXMK_ENV = {"XINDYOPTS": "-L english -C utf8 -M sphinx.xdy", "LATEXOPTS": ""}


def _present(probe: str) -> bool:
    if "*" in probe:
        return any(Path("/").glob(probe.lstrip("/")))
    if probe.startswith("/"):
        return Path(probe).exists()
    return shutil.which(probe) is not None


def ensure_system_tools(session: nox.Session, *names: str) -> None:
    """Install the Debian packages for *names* that are missing, or stop."""
    missing = sorted(
        {
            package
            for name in names
            for probes, package in [SYSTEM_TOOLS[name]]
            if not all(_present(p) for p in probes)
        }
    )
    if not missing:
        return
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if os.geteuid() == 0:
        sudo: list[str] = []
    elif (
        shutil.which("sudo")
        and subprocess.run(
            ["sudo", "-n", "true"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        sudo = ["sudo", "-n"]
    else:
        session.error(
            "Missing system packages; install them with: sudo apt-get install "
            + " ".join(missing)
        )
    if shutil.which("apt-get") is None:
        session.error(
            "Missing system packages and no apt-get here; install the equivalents "
            "of these Debian packages: " + " ".join(missing)
        )
    session.log(f"Installing system packages: {' '.join(missing)}")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run(*sudo, "apt-get", "update", "-qq", external=True, env=env)
    session.run(*sudo, *install, "-qq", external=True, env=env)


def install_project(session: nox.Session, *groups: str) -> None:
    """Install the project (editable) and the named dependency groups."""
    requirements: list[str] = []
    for group in groups:
        requirements.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install("-e", ".", *requirements)


def install_page_checkers(session: nox.Session) -> None:
    """The npm packages of package-lock.json, into node_modules/, once."""
    stamp = ROOT / "node_modules" / ".package-lock.json"
    lock = ROOT / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    session.run(
        "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", external=True
    )


def publish(session: nox.Session, staging: Path, target: Path) -> None:
    """Replace *target* with the finished *staging* tree in one step."""
    staged_build.publish(staging, target)
    shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    session.log(f"Published {shown}")


def reproducible_env() -> dict[str, str]:
    """Dates for a reproducible build: ``SOURCE_DATE_EPOCH`` as given, or the
    time of the last commit. Sphinx uses it for dates in the output, and
    xdvipdfmx for the PDF's creation date and ID (``FORCE_SOURCE_DATE``)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None:
        done = subprocess.run(
            ["git", "log", "-1", "--format=%ct"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        epoch = done.stdout.strip() if done.returncode == 0 else ""
    return {"SOURCE_DATE_EPOCH": epoch, "FORCE_SOURCE_DATE": "1"} if epoch else {}


def build_staged(
    session: nox.Session,
    source: Path,
    target: Path,
    doctrees: Path,
    *options: str,
    check: str | None = None,
) -> None:
    """Run ``sphinx-build *options`` from *source* into a staging copy of
    *target*, and publish it in one step only if the build (and *check*)
    passes: tools/staged_build.py, which also survives a build killed at any
    point and refuses a second build of the same *target* at once."""
    session.run(
        "python",
        str(ROOT / "tools" / "staged_build.py"),
        str(target),
        str(doctrees),
        *(("--check", check) if check else ()),
        "--",
        *options,
        str(source),
        env=reproducible_env(),
    )


def read_everything(session: nox.Session) -> Path:
    """Read every page with the ``dummy`` builder (it writes nothing); return
    the doctree folder that the essay checks and the sources report read."""
    doctrees = BUILD / "doctrees-lint"
    session.run(
        "sphinx-build",
        "-q",
        "-b",
        "dummy",
        "-d",
        str(doctrees),
        str(DOCS),
        str(BUILD / "dummy"),
    )
    return doctrees


@nox.session(reuse_venv=True)
def html(session: nox.Session) -> None:
    """Build the site into docs/_build/html with -nW; keep the last good site."""
    ensure_system_tools(session, *DIAGRAMS)
    install_project(session)
    build_staged(
        session,
        DOCS,
        BUILD / "html",
        BUILD / "doctrees-html",
        "-nW",
        "--jobs",
        "auto",
        "-b",
        "html",
        *session.posargs,
    )


@nox.session(reuse_venv=True)
def live(session: nox.Session) -> None:
    """Serve the site at http://127.0.0.1:8000 and rebuild it on every save.

    sphinx-autobuild, with each rebuild run in its warm process
    (tools/warm_autobuild.py) instead of a new ``python -m sphinx``.
    """
    ensure_system_tools(session, *DIAGRAMS)
    install_project(session, "live")
    session.run(
        "python",
        str(ROOT / "tools" / "warm_autobuild.py"),
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
        "--ignore",
        str(BUILD),
        "--watch",
        str(ROOT / "src"),
        "-n",
        # Only what the author can act on: warnings, and the warm builder's
        # one "Rebuilt in N s" line.
        "-q",
        "-b",
        "html",
        # Drafts (status: draft) are previewed, with a badge; see drafts.py.
        "-D",
        "essays_drafts=1",
        # Build problems in the browser (sphinx_essays.live).
        "-D",
        "essays_live=1",
        "-d",
        str(BUILD / "doctrees-live"),
        str(DOCS),
        str(BUILD / "live"),
        *session.posargs,
    )


@nox.session(reuse_venv=True)
def pdf(session: nox.Session) -> None:
    """Build docs/_build/pdf/infrastructure-essays.pdf with XeLaTeX."""
    ensure_system_tools(session, *PDF)
    install_project(session)
    latex = BUILD / "latex.new"
    shutil.rmtree(latex, ignore_errors=True)
    session.run(
        "sphinx-build",
        "-nW",
        "-b",
        "latex",
        "-d",
        str(BUILD / "doctrees-latex"),
        str(DOCS),
        str(latex),
        *session.posargs,
        env=reproducible_env(),
    )
    session.chdir(latex)
    session.run(
        "latexmk",
        "-pdfxe",
        "-interaction=nonstopmode",
        "-halt-on-error",
        "infrastructure-essays.tex",
        external=True,
        silent=True,
        env={**LATEXMK_ENV, **reproducible_env()},
    )
    session.chdir(ROOT)
    staging = BUILD / "pdf.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(latex / "infrastructure-essays.pdf", staging)
    publish(session, staging, BUILD / "pdf")
    publish(session, latex, BUILD / "latex")


@nox.session(reuse_venv=True)
def new(session: nox.Session) -> None:
    """Create an essay: nox -s new -- "Title" --topic observability."""
    install_project(session)
    session.run("python", str(ROOT / "tools" / "new_essay.py"), *session.posargs)


@nox.session(reuse_venv=True)
def epub(session: nox.Session) -> None:
    """Build docs/_build/epub/InfrastructureEssays.epub with -nW; publish it
    only if epubcheck passes."""
    ensure_system_tools(session, *EPUB)
    install_project(session)
    build_staged(
        session,
        DOCS,
        BUILD / "epub",
        BUILD / "doctrees-epub",
        "-nW",
        "-b",
        "epub",
        *session.posargs,
        check=f"java -jar {EPUBCHECK_JAR} {{output}}/{EPUB_FILE}",
    )


@nox.session(reuse_venv=True)
def linkcheck(session: nox.Session) -> None:
    """Check every external link the essays cite. It needs a network, so it is
    not part of the tests; internal links are checked offline by the tests."""
    ensure_system_tools(session, *DIAGRAMS)
    install_project(session)
    session.run(
        "sphinx-build",
        "-b",
        "linkcheck",
        "-d",
        str(BUILD / "doctrees-linkcheck"),
        str(DOCS),
        str(BUILD / "linkcheck"),
        *session.posargs,
    )


@nox.session(reuse_venv=True)
def tests(session: nox.Session) -> None:
    """Run the whole test suite: roots, the real site, the PDF and a browser."""
    ensure_system_tools(session, *PDF, *BROWSER, *EPUB, *EXAMPLES)
    install_project(session, "tests")
    install_page_checkers(session)
    session.run("pytest", *session.posargs)


@nox.session(reuse_venv=True)
def bench(session: nox.Session) -> None:
    """Benchmark full and incremental builds against stock furo navigation,
    what search costs the build and a reader's phone, and what the social
    preview images and the citations cost (the real site, and a 1,000-essay
    build).

    Writes benchmarks/results.{json,md}, docs/_static/benchmarks.{svg,pdf},
    benchmarks/social_cards.json and benchmarks/citations.json. Pass options
    to run.py through, e.g.
    ``nox -s bench -- --sizes 100 300 --repeat 3``.
    """
    ensure_system_tools(session, *DIAGRAMS, *BROWSER)
    install_project(session, "bench")
    session.run("python", "benchmarks/run.py", *session.posargs)
    session.run("python", "benchmarks/social_cards.py", "--size", "1000")
    session.run("python", "benchmarks/citations.py", "--size", "1000")


@nox.session(name="bench-10k", reuse_venv=True)
def bench_10k(session: nox.Session) -> None:
    """The build benchmark at 10,000 essays, ours against the floor, once
    each (about an hour on two cores). Its rows join those ``nox -s bench``
    wrote in benchmarks/results.{json,md}."""
    ensure_system_tools(session, *DIAGRAMS, *BROWSER)
    install_project(session, "bench")
    session.run(
        "python", "benchmarks/run.py", "--sizes", "10000", "--repeat", "1", "--merge"
    )


@nox.session(reuse_venv=True)
def lint(session: nox.Session) -> None:
    """Check style, formatting and types, the essays' spelling, and each
    essay against the house standard (tools/essay_standard.py); then list the
    sources not checked for a year (tools/sources_report.py, never a failure)."""
    ensure_system_tools(session, *DIAGRAMS)
    install_project(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", *session.posargs)
    session.run("codespell", "docs/essays", "docs/index.md", "docs/glossary.md")
    doctrees = read_everything(session)
    session.run("python", str(ROOT / "tools" / "essay_standard.py"), str(doctrees))
    session.run("python", str(ROOT / "tools" / "sources_report.py"), str(doctrees))


@nox.session(reuse_venv=True)
def sources(session: nox.Session) -> None:
    """List the sources whose urldate is older than essays_sources_max_age
    (365 days), with the essay lines that cite them, oldest first. A report
    for authors, never a failure: ``nox -s sources -- --max-age 180``."""
    ensure_system_tools(session, *DIAGRAMS)
    install_project(session)
    doctrees = read_everything(session)
    session.run(
        "python",
        str(ROOT / "tools" / "sources_report.py"),
        str(doctrees),
        *session.posargs,
    )

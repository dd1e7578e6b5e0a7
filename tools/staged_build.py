"""Build a Sphinx output into a staging copy, then publish it in one step.

    python tools/staged_build.py TARGET DOCTREES [--check COMMAND] -- ARGUMENTS

The build runs ``sphinx-build ARGUMENTS -d DOCTREES SOURCE TARGET.new``
(SOURCE is the last argument), in a copy of TARGET so that it can be
incremental. ``--check`` runs COMMAND (``{output}`` is the staging folder)
on the finished build; it is published only if that passes too. Whatever
stops it, TARGET stays as it was until the finished build replaces it:

* **Publishing is one system call.** ``renameat2(RENAME_EXCHANGE)`` swaps
  the staging tree and the published one; there is no moment without a
  site. (Where the call is missing, two renames, and the next build puts
  the old site back if it was stopped between them.)
* **A stopped build leaves no half-true cache.** ``DOCTREES/.unfinished``
  exists from the start of a build until its output is published. The next
  build finds it and reads everything again, because the doctrees of a
  killed build may describe pages that never reached TARGET.
* **One build at a time per TARGET.** A second build refuses with one line
  that names the first one's process.

``ESSAYS_FAULT`` names a point at which to kill this process with
``SIGKILL``: ``publish:exchange`` (before the swap) or ``publish:cleanup``
(after it). The fault-injection tests use it; nothing else sets it.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

#: In DOCTREES while a build that has not been published runs.
UNFINISHED = ".unfinished"
#: Linux's renameat2 flag that swaps two paths.
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def fault(point: str) -> None:
    """Die here, as a power cut or the OOM killer would, when asked to."""
    if os.environ.get("ESSAYS_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _exchange(a: Path, b: Path) -> bool:
    """Swap *a* and *b* atomically; False where the kernel or libc cannot."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    done = renameat2(
        AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE
    )
    return bool(done == 0)


def publish(staging: Path, target: Path) -> None:
    """Replace *target* with *staging*."""
    fault("publish:exchange")
    old = target.with_name(target.name + ".old")
    if target.exists() and _exchange(staging, target):
        fault("publish:cleanup")
        shutil.rmtree(staging)
        return
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    fault("publish:cleanup")
    shutil.rmtree(old, ignore_errors=True)


def recover(target: Path, doctrees: Path) -> None:
    """Undo what a build stopped half-way left behind."""
    old = target.with_name(target.name + ".old")
    if old.exists() and not target.exists():
        old.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(target.with_name(target.name + ".new"), ignore_errors=True)
    if (doctrees / UNFINISHED).exists():
        print(
            f"{doctrees}: the last build was stopped before it was published;"
            " reading every page again"
        )
        shutil.rmtree(doctrees)


def discard(staging: Path, doctrees: Path) -> None:
    """Forget a failed build: Sphinx would treat its failing pages as built,
    and the next build would publish them without a warning."""
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(doctrees, ignore_errors=True)


def lock(target: Path) -> int:
    """Hold ``TARGET.lock`` for this process's lifetime, or exit with one line."""
    path = target.with_name(target.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # A POSIX record lock, not flock(): the processes Sphinx forks (for
        # -j, or a multiprocessing manager) do not inherit it, so none of
        # them can keep holding it after this process dies.
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(handle, 32, 0).decode().strip() or "unknown"
        sys.exit(
            f"{target}: another build is running (process {holder}); wait for"
            " it to finish or stop it, then build again"
        )
    os.ftruncate(handle, 0)
    os.pwrite(handle, str(os.getpid()).encode(), 0)
    return handle


def build(
    target: Path, doctrees: Path, arguments: list[str], check: str | None = None
) -> int:
    """Build into a staging copy of *target*; publish it if the build (and
    *check*) passes."""
    from sphinx.cmd.build import build_main

    lock(target)
    recover(target, doctrees)
    staging = target.with_name(target.name + ".new")
    if target.exists() and doctrees.exists():
        # Incremental: Sphinx's cache describes this site. Without the cache
        # the build starts from nothing, so no page of a deleted essay stays.
        shutil.copytree(target, staging, symlinks=True)
    doctrees.mkdir(parents=True, exist_ok=True)
    (doctrees / UNFINISHED).touch()
    *options, source = arguments
    try:
        status = build_main([*options, "-d", str(doctrees), source, str(staging)])
        if not status and check:
            command = [part.format(output=staging) for part in shlex.split(check)]
            status = subprocess.run(command, check=False).returncode
    except BaseException:
        discard(staging, doctrees)
        raise
    if status:
        discard(staging, doctrees)
        return status
    publish(staging, target)
    (doctrees / UNFINISHED).unlink()
    print(f"Published {target}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path)
    parser.add_argument("doctrees", type=Path)
    parser.add_argument("--check", help="run on the staging folder ({output})")
    parser.add_argument("arguments", nargs="+", help="sphinx-build's, SOURCE last")
    options = parser.parse_args(argv)
    return build(options.target, options.doctrees, options.arguments, options.check)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

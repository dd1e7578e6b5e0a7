"""The examples of "Puppets and Octopi", checked as the essay shows them.

The Python agent runs against a fake host whose package database and running
process can disagree, with the clock, the random source and the state file
replaced, so the tests can check what it observes, what it does, what it keeps
across restarts, how long it waits and that a reporting outage does not stop
it. The Kubernetes manifests are validated against the API's own models (the
``kubernetes`` client, generated from the OpenAPI schema, refuses unknown
fields and wrong types), and the Argo CD Application against the schema of
Argo CD's own CRD. The playbook is checked by ``ansible-playbook
--syntax-check`` and against the documented options of the ``apt`` module, and
its play keywords (``serial``, ``max_fail_percentage``, the handler flush) are
run by ansible-core on twenty local stand-in hosts, which also shows what
``force_handlers`` would do to the circuit breaker. The HPA lint runs on the
essay's manifests and on broken copies of them, the PromQL expression is parsed
with promql-parser, and the silence alerts are replayed by ``promtool test
rules`` against a fleet with one host of each failure. The ``ansible.cfg``
inventory settings are checked against ansible-core's own table of settings
and run by ``ansible-inventory`` over a static source and a failing script;
the inventory drift alerts are replayed like the silence alerts, and so is
the duplicate host that would break the silence rules' ring join. Review
round 8 added the agent's remediation budget, host lists and plugin files
under the ``ansible.cfg``, a two-replica intent store, the ring gate's
minimum history, and the lint's check that images are pinned by digest.
Review round 10 added a host that misses one middle task and answers again, a
task that hangs, ssh keepalives, pauses that page only through their own
alert, the running-version check, a store mirror that catches up late, and a
restart that raises. Review round 11 added a unit that is active but does not
answer, the saved intent enforced before the splayed first fetch, the forks the
throughput arithmetic assumes, and a dead host whose series vanish. The agent
and the silence rules are split between the chapter and its appendix; the tests
join the two halves back into one module and one rules file. Review round 13
moved the whole play to the appendix and left a short excerpt in the chapter,
which the tests check is the play cut, not changed, and added a process that
never answers, which the play fails without restarting. Round 15 moved the
``ansible.cfg``, the convergence alerts, the ring gate and the GitOps manifests
to the appendix; the tests find every block by its name, wherever it stands.
Round 17 added the rollback lane (old content under a newer generation) and
the gate renamed for a third ring. The answer to review round 17 pins the
rings in package versions, which the running-version rule must cut to what a
process reports (and checks the cut against the agent's ``upstream``), runs
``meta: refresh_inventory`` in a play whose inventory grows, and validates the
Flux Kustomization's ignore rule against the Kustomization CRD's schema.
"""

from __future__ import annotations

import configparser
import copy
import fnmatch
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import promql_parser
import pytest
import yaml
from kubernetes.client import (
    V1Deployment,
    V1DeploymentStatus,
    V1ObjectMeta,
    V2HorizontalPodAutoscaler,
)

from conftest import Site, named_block

DOC = "essays/infrastructure/puppets-and-octopi"
BIN = Path(sys.executable).parent


# -- The agent ---------------------------------------------------------------


def silence_rules(site: Site) -> str:
    """The chapter's silence group and the appendix's, as one rules file."""
    body = named_block(site, DOC, "puppets-and-octopi-silence-rules")
    more = named_block(site, DOC, "puppets-and-octopi-silence-rules-more")
    assert more.startswith("groups:\n")
    return body.rstrip("\n") + "\n" + more.removeprefix("groups:\n")


def load_block(site: Site, name: str, module_name: str) -> types.ModuleType:
    module = types.ModuleType(module_name)
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(named_block(site, DOC, name), module.__dict__)
    return module


@pytest.fixture(scope="module")
def agent(site: Site) -> types.ModuleType:
    """The agent code block, executed as a module."""
    # the chapter's core (observe, plan, reconcile_once) and the appendix's loop
    module = load_block(site, "puppets-and-octopi-agent", "puppets_and_octopi_agent")
    exec(named_block(site, DOC, "puppets-and-octopi-agent-loop"), module.__dict__)
    yield module
    del sys.modules[module.__name__]


class FakeClock:
    """A monotonic clock that moves only when the agent sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.fetch_timeouts: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class FakeHost:
    """A host with a package database and a process that can disagree.

    Installing changes the files on disk only; the process keeps the version
    it was started with until something starts or restarts it."""

    def __init__(
        self,
        name: str = "host-8",
        installed: str | None = "2.14.0",
        running: str | None = "2.14.0",
        fail_install: bool = False,
        crash_on_start: bool = False,
        fail_reports: int = 0,
        replaced: bool = False,
        hung: bool = False,
    ) -> None:
        self.name = name
        self.installed = installed
        self.running = running
        # the package version the process was started from
        self.launched_from = None if replaced else installed
        self.fail_install = fail_install
        self.crash_on_start = crash_on_start
        self.fail_reports = fail_reports  # how many reports in a row are lost
        # active to systemd, but its process answers nothing (deadlocked, out
        # of file descriptors, listening but not serving)
        self.hung = hung
        self.calls: list[tuple[str, ...]] = []
        self.reports: list[dict[str, Any]] = []
        self.report_times: list[float] = []
        self.report_timeouts: list[float] = []
        self.clock: FakeClock | None = None

    def installed_version(self, unit: str) -> str | None:
        return self.installed

    def unit_active(self, unit: str) -> bool:
        return self.running is not None or self.hung

    def running_version(self, unit: str) -> str | None:
        return None if self.hung else self.running

    def binary_replaced(self, unit: str) -> bool:
        return self.running is not None and self.installed != self.launched_from

    def install(self, unit: str, version: str) -> None:
        self.calls.append(("install", version))
        if self.fail_install:
            raise OSError("No space left on device")
        self.installed = version

    def _launch(self) -> None:
        self.running = None if self.crash_on_start else self.installed
        self.launched_from = self.installed
        self.hung = False

    def start(self, unit: str) -> None:
        self.calls.append(("start",))
        if not self.unit_active(unit):  # like systemctl start: an active unit stays
            self._launch()

    def restart(self, unit: str) -> None:
        self.calls.append(("restart",))
        self._launch()

    def stop(self, unit: str) -> None:
        self.calls.append(("stop",))
        self.running, self.hung = None, False

    def report(self, *, timeout: float, **fields: Any) -> None:
        self.report_timeouts.append(timeout)
        if self.fail_reports:
            self.fail_reports -= 1
            raise ConnectionError("report endpoint down")
        self.reports.append(fields)
        self.report_times.append(self.clock() if self.clock else -1.0)


def intent(generation: int = 7, version: str = "2.14.1", **extra: Any) -> dict:
    """What the policy server sends: plain data, as it would arrive as JSON."""
    return {"generation": generation, "version": version, **extra}


def down() -> Any:
    raise ConnectionError("policy server down")


def drive(
    agent: types.ModuleType,
    host: FakeHost,
    fetch: Callable[[], Any],
    passes: int,
    state: Path,
    rand: Callable[[], float] = lambda: 1.0,
    **options: Any,
) -> FakeClock:
    """Run the agent for *passes* enforcement passes on a fake clock.

    *fetch* takes no arguments; the agent's call carries a timeout, which is
    recorded on the clock."""
    clock = FakeClock()
    host.clock = clock

    def fetch_with_timeout(*, timeout: float) -> Any:
        clock.fetch_timeouts.append(timeout)
        return fetch()

    agent.run(
        host,
        fetch_with_timeout,
        str(state),
        clock=clock,
        sleep=clock.sleep,
        rand=rand,
        passes=passes,
        **options,
    )
    return clock


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "intent.json"


def test_an_upgrade_restarts_the_old_binary(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(installed="2.14.0", running="2.14.0")
    drive(agent, host, intent, passes=1, state=state)
    assert host.calls == [("install", "2.14.1"), ("restart",)]
    assert (host.installed, host.running) == ("2.14.1", "2.14.1")
    assert host.reports == [
        {"intent_generation": 7, "converged": True, "problem": None}
    ]


def test_a_package_swapped_underneath_is_not_mistaken_for_convergence(
    agent: types.ModuleType, state: Path
) -> None:
    # A library or package upgrade put 2.14.1 on disk; the process is still 2.14.0.
    host = FakeHost(installed="2.14.1", running="2.14.0")
    want = agent.validate(intent())
    seen = agent.observe(host, "app")
    assert seen.installed == want.version  # an installed-version check says "done"
    assert agent.plan(want, seen) == ["restart"]  # the agent knows it is not
    drive(agent, host, intent, passes=1, state=state)
    assert host.calls == [("restart",)]
    assert host.running == "2.14.1"
    assert host.reports[-1]["converged"] is True


def test_a_stopped_service_is_installed_then_started(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(installed=None, running=None)
    drive(agent, host, intent, passes=1, state=state)
    assert host.calls == [("install", "2.14.1"), ("start",)]
    assert host.running == "2.14.1"


def test_a_service_that_should_not_run_is_stopped(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(installed="2.14.1", running="2.14.1")
    drive(agent, host, lambda: intent(running=False), passes=1, state=state)
    assert host.calls == [("stop",)]
    assert host.running is None
    assert host.reports[-1]["converged"] is True


def test_a_converged_host_is_left_alone(agent: types.ModuleType, state: Path) -> None:
    host = FakeHost(installed="2.14.1", running="2.14.1")
    clock = drive(agent, host, intent, passes=3, state=state)
    assert host.calls == []
    assert [r["converged"] for r in host.reports] == [True, True, True]
    assert clock.sleeps[1:] == pytest.approx([300.0, 300.0, 300.0])
    assert host.report_times == pytest.approx(
        [clock.sleeps[0] + t for t in (0.0, 300.0, 600.0)]
    )


def test_it_reports_what_it_observes_after_acting(
    agent: types.ModuleType, state: Path
) -> None:
    # The new binary crashes on start: acting is not the same as converging.
    host = FakeHost(installed="2.14.0", running="2.14.0", crash_on_start=True)
    # settle=0: no readiness wait, so the backoff alone spaces the passes
    clock = drive(agent, host, intent, passes=2, state=state, settle=0.0)
    assert [r["converged"] for r in host.reports] == [False, False]
    assert "start" in host.reports[0]["problem"]
    assert host.reports[0]["intent_generation"] == 7
    assert clock.sleeps[1:] == pytest.approx(
        [10.0, 20.0]
    )  # it backs off instead of retrying hot


def test_a_failed_apply_is_reported_and_backed_off(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(fail_install=True)
    clock = drive(agent, host, intent, passes=3, state=state)
    assert all(not r["converged"] for r in host.reports)
    assert "apply failed" in host.reports[0]["problem"]
    assert clock.sleeps[1:] == pytest.approx([10.0, 20.0, 40.0])


def test_with_no_intent_ever_seen_both_loops_back_off_to_the_cap(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost()
    clock = drive(agent, host, down, passes=9, state=state)
    assert clock.sleeps[1:] == pytest.approx(
        [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0, 600.0]
    )
    first = host.reports[0]
    assert first["intent_generation"] is None and first["converged"] is False
    assert "no intent accepted yet" in first["problem"]
    assert "fetch failed" in first["problem"]
    assert host.calls == []  # no intent has ever been seen: nothing to enforce
    assert not state.exists()


def test_backoff_is_jittered(agent: types.ModuleType, state: Path) -> None:
    clock = drive(agent, FakeHost(), down, passes=4, state=state, rand=lambda: 0.25)
    assert clock.sleeps[1:] == pytest.approx([2.5, 5.0, 10.0, 20.0])


def test_a_long_outage_keeps_the_fetch_backoff_at_the_cap(
    agent: types.ModuleType, state: Path
) -> None:
    # Two weeks of outage, some 2,000 failed fetches: with an unclamped exponent
    # 2 ** (failures - 1) is too large for a float after about 1,024 of them,
    # and run() dies with OverflowError.
    host = FakeHost(installed="2.14.1", running="2.14.1")
    fetches: list[float] = []

    def once_then_down() -> Any:
        fetches.append(host.clock())
        if len(fetches) > 1:
            raise ConnectionError("policy server down")
        return intent()

    drive(agent, host, once_then_down, passes=4100, state=state)
    assert len(fetches) > 2000
    gaps = [b - a for a, b in itertools.pairwise(fetches)]
    assert max(gaps) == pytest.approx(600.0)
    assert gaps[-1500:] == pytest.approx([600.0] * 1500)
    assert len(host.reports) == 4100 and all(r["converged"] for r in host.reports)
    assert "fetch failed" in host.reports[-1]["problem"]


def test_a_persistent_apply_failure_keeps_its_backoff_at_the_cap(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(fail_install=True)  # e.g. a package missing from the mirror
    drive(agent, host, intent, passes=2000, state=state)
    assert len(host.reports) == 2000
    assert not any(r["converged"] for r in host.reports)
    gaps = [
        b - a for a, b in zip(host.report_times, host.report_times[1:], strict=False)
    ]
    assert max(gaps) == pytest.approx(600.0)
    assert gaps[-1500:] == pytest.approx([600.0] * 1500)


def test_success_resets_the_delay_to_the_interval(
    agent: types.ModuleType, state: Path
) -> None:
    answers: list[Any] = [ConnectionError("down"), ConnectionError("down")]

    def flaky() -> Any:
        if answers:
            raise answers.pop()
        return intent()

    host = FakeHost()
    clock = drive(agent, host, flaky, passes=4, state=state)
    assert clock.sleeps[1:] == pytest.approx([10.0, 20.0, 300.0, 300.0])
    assert host.running == "2.14.1"


def test_an_outage_slows_fetching_but_not_enforcement(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(installed="2.14.1", running="2.14.1")
    fetches: list[float] = []

    def once_then_down() -> Any:
        fetches.append(host.clock())
        if len(fetches) > 1:
            host.running = None  # meanwhile someone stops the service by hand
            raise ConnectionError("policy server down")
        return intent()

    clock = drive(agent, host, once_then_down, passes=5, state=state)
    t0 = clock.sleeps[0]
    # Drift is corrected every interval, exactly as when the server was up ...
    assert host.report_times == pytest.approx(
        [t0 + t for t in (0.0, 300.0, 600.0, 900.0, 1200.0)]
    )
    assert host.calls.count(("start",)) == 4
    assert all(r["intent_generation"] == 7 for r in host.reports)
    assert all(r["converged"] for r in host.reports[1:])
    assert "fetch failed" in host.reports[-1]["problem"]
    # ... while the fetches back off on their own schedule.
    assert [f - t0 for f in fetches] == pytest.approx(
        [0.0, 300.0, 310.0, 330.0, 370.0, 450.0, 610.0, 930.0]
    )


def test_a_restart_during_an_outage_enforces_the_saved_intent(
    agent: types.ModuleType, state: Path
) -> None:
    first = FakeHost(installed="2.14.0", running="2.14.0")
    drive(agent, first, intent, passes=1, state=state)
    assert json.loads(state.read_text()) == {
        "generation": 7,
        "version": "2.14.1",
        "running": True,
    }
    # The agent restarts while the server is down, on a host that has drifted.
    again = FakeHost(installed="2.14.1", running=None)
    clock = drive(agent, again, down, passes=2, state=state)
    assert again.calls == [("start",)]
    assert again.running == "2.14.1"
    assert [r["intent_generation"] for r in again.reports] == [7, 7]
    assert [r["converged"] for r in again.reports] == [True, True]
    # Review round 11: the saved intent is enforced at once, not after the
    # splay; only the fetch waits for it, and then fails.
    assert again.report_times[0] == 0.0
    assert clock.sleeps[0] == pytest.approx(agent.splay_offset(again.name, 240.0))
    assert again.reports[0]["problem"] is None
    assert again.reports[1]["problem"].startswith("fetch failed")


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        "",
        {"generation": "8", "version": "2.14.2"},
        {"generation": 8, "version": ""},
        {"generation": 8, "version": "2.14.2", "running": "yes"},
        {"generation": 8, "version": "2.14.2", "rm": "-rf /"},
        {"generation": 6, "version": "2.13.0"},  # older than what it holds
        {"generation": 7, "version": "2.14.2"},  # same generation, other content
    ],
)
def test_bad_or_stale_intent_is_refused_and_the_good_one_kept(
    agent: types.ModuleType, state: Path, bad: Any
) -> None:
    answers = [intent(), bad, intent()]
    host = FakeHost(installed="2.14.1", running="2.14.1")

    def fetch() -> Any:
        host.running = None  # drift before every pass
        return answers.pop(0) if len(answers) > 1 else answers[0]

    # Fetch and enforcement run together every 300 s here; rand=0.5 keeps the
    # retry after the refused answer short but non-zero.
    drive(agent, host, fetch, passes=3, state=state, rand=lambda: 0.5)
    assert host.calls.count(("start",)) >= 3  # enforcement never stopped
    assert all(r["intent_generation"] == 7 for r in host.reports)
    assert any("fetch failed" in (r["problem"] or "") for r in host.reports)
    assert agent.load_intent(str(state)) == agent.validate(intent())


def test_a_newer_generation_is_saved_and_acted_on_at_once(
    agent: types.ModuleType, state: Path
) -> None:
    answers = [intent(7, "2.14.1"), intent(8, "2.14.2")]
    host = FakeHost(installed="2.14.1", running="2.14.1")
    drive(
        agent,
        host,
        lambda: answers.pop(0) if len(answers) > 1 else answers[0],
        passes=2,
        state=state,
    )
    assert host.calls == [("install", "2.14.2"), ("restart",)]
    assert [r["intent_generation"] for r in host.reports] == [7, 8]
    assert agent.load_intent(str(state)).generation == 8


def test_a_rollback_is_a_newer_generation_with_the_old_content(
    agent: types.ModuleType, state: Path
) -> None:
    # The rollback lane: agents refuse a lower generation, so going back from
    # 2.14.2 (generation 8) publishes 2.14.1 again as generation 9.
    answers = [intent(8, "2.14.2"), intent(9, "2.14.1")]
    host = FakeHost(installed="2.14.2", running="2.14.2")
    drive(
        agent,
        host,
        lambda: answers.pop(0) if len(answers) > 1 else answers[0],
        passes=2,
        state=state,
    )
    assert host.calls == [("install", "2.14.1"), ("restart",)]
    assert (host.installed, host.running) == ("2.14.1", "2.14.1")
    assert agent.load_intent(str(state)).generation == 9


def test_republishing_the_old_generation_is_no_rollback(
    agent: types.ModuleType, state: Path
) -> None:
    # ...whereas serving generation 7 again, the one 2.14.1 first had, is refused.
    answers = [intent(8, "2.14.2"), intent(7, "2.14.1")]
    host = FakeHost(installed="2.14.2", running="2.14.2")
    drive(
        agent,
        host,
        lambda: answers.pop(0) if len(answers) > 1 else answers[0],
        passes=2,
        state=state,
    )
    assert host.calls == []
    assert host.running == "2.14.2"
    assert "refused" in host.reports[-1]["problem"]


class DebianHost(FakeHost):
    """Package versions carry a Debian revision; the process reports upstream."""

    def _launch(self) -> None:
        super()._launch()
        if self.running is not None:
            self.running = self.running.split(":")[-1].rsplit("-", 1)[0]


def test_a_debian_revision_is_not_mistaken_for_a_stale_process(
    agent: types.ModuleType, state: Path
) -> None:
    # Comparing "2.14.1-1" with "2.14.1" as raw strings would restart every pass.
    host = DebianHost(installed="2.14.1-1", running="2.14.1")
    drive(agent, host, lambda: intent(version="2.14.1-1"), passes=3, state=state)
    assert host.calls == []
    assert all(r["converged"] for r in host.reports)
    assert agent.upstream("1:2.14.1-1") == agent.upstream("2.14.1") == "2.14.1"
    assert agent.upstream("2.14.1-rc1-3") == "2.14.1-rc1"


def test_a_debian_upgrade_installs_restarts_and_then_rests(
    agent: types.ModuleType, state: Path
) -> None:
    host = DebianHost(installed="2.14.0-3", running="2.14.0")
    drive(agent, host, lambda: intent(version="2.14.1-1"), passes=2, state=state)
    assert host.calls == [("install", "2.14.1-1"), ("restart",)]
    assert (host.installed, host.running) == ("2.14.1-1", "2.14.1")
    assert [r["converged"] for r in host.reports] == [True, True]


def test_a_revision_only_upgrade_restarts_the_old_binary(
    agent: types.ModuleType, state: Path
) -> None:
    # Review round 6: 2.14.1-1 -> 2.14.1-2 (a Debian security fix) installed
    # the package and left the old process running, reported as converged.
    host = DebianHost(installed="2.14.1-1", running="2.14.1")
    drive(agent, host, lambda: intent(version="2.14.1-2"), passes=2, state=state)
    assert host.calls == [("install", "2.14.1-2"), ("restart",)]
    assert not host.binary_replaced("app")
    assert [r["converged"] for r in host.reports] == [True, True]


def test_a_crash_between_install_and_restart_is_repaired_on_the_next_pass(
    agent: types.ModuleType, state: Path
) -> None:
    # The package is current and the process reports the same upstream version,
    # but it was started from the old revision's binary.
    host = DebianHost(installed="2.14.1-2", running="2.14.1", replaced=True)
    drive(agent, host, lambda: intent(version="2.14.1-2"), passes=2, state=state)
    assert host.calls == [("restart",)]
    assert all(r["converged"] for r in host.reports)


class DfsgHost(FakeHost):
    """A repacked package, 2.14.1+dfsg-1, whose binary prints plain 2.14.1:
    the version the agent derives never matches what the process reports."""

    def _launch(self) -> None:
        super()._launch()
        if self.running is not None:
            self.running = self.running.split("+")[0]


def test_a_fix_that_does_not_take_stops_after_the_budget(
    agent: types.ModuleType, state: Path
) -> None:
    # Review round 8: without a budget, 50 passes restarted the service 50 times.
    host = DfsgHost(installed="2.14.1+dfsg-1", running="2.14.1")
    drive(agent, host, lambda: intent(version="2.14.1+dfsg-1"), passes=50, state=state)
    assert host.calls == [("restart",)] * 3
    assert not any(r["converged"] for r in host.reports)
    assert host.reports[2]["problem"].startswith("still to do")
    assert host.reports[-1]["problem"].startswith(
        "degraded: remediation budget exhausted"
    )
    assert "restart" in host.reports[-1]["problem"]


class FailingRestart(FakeHost):
    """A unit that crashes on start, so that ``systemctl restart`` exits
    non-zero: the step raises instead of returning."""

    def restart(self, unit: str) -> None:
        self.calls.append(("restart",))
        raise subprocess.CalledProcessError(1, ["systemctl", "restart", unit])


def test_a_step_that_raises_spends_the_budget_too(
    agent: types.ModuleType, state: Path
) -> None:
    # Review round 10: a restart that raised bypassed the budget, so a crashing
    # unit was restarted on every pass, for ever, on every host.
    host = FailingRestart(installed="2.14.0", running="2.14.0")
    drive(agent, host, intent, passes=50, state=state)
    assert host.calls == [("install", "2.14.1")] + [("restart",)] * 3
    assert "apply failed" in host.reports[0]["problem"]
    assert host.reports[-1]["problem"].startswith(
        "degraded: remediation budget exhausted"
    )
    unbounded = FailingRestart(installed="2.14.0", running="2.14.0")
    drive(agent, unbounded, intent, passes=50, state=state, budget=10**9)
    assert unbounded.calls.count(("restart",)) == 50


def test_without_the_budget_the_agent_restarts_on_every_pass(
    agent: types.ModuleType, state: Path
) -> None:
    host = DfsgHost(installed="2.14.1+dfsg-1", running="2.14.1")
    drive(
        agent,
        host,
        lambda: intent(version="2.14.1+dfsg-1"),
        passes=50,
        state=state,
        budget=10**9,
    )
    assert host.calls == [("restart",)] * 50


def test_a_new_intent_or_a_manual_fix_resets_the_budget(
    agent: types.ModuleType, state: Path
) -> None:
    host = DfsgHost(installed="2.14.1+dfsg-1", running="2.14.1")
    answers = itertools.chain(
        [intent(version="2.14.1+dfsg-1")] * 8, itertools.repeat(intent(8, "2.14.2"))
    )
    drive(agent, host, lambda: next(answers), passes=60, state=state)
    # three futile restarts, then the new generation installs and converges
    assert host.calls[:3] == [("restart",)] * 3
    assert host.calls[3:] == [("install", "2.14.2"), ("restart",)]
    assert host.reports[-1]["converged"]
    # with act=False, as once the budget is spent, a pass only observes
    host = DfsgHost(installed="2.14.1+dfsg-1", running="2.14.1")
    want = agent.validate(intent(version="2.14.1+dfsg-1"))
    assert agent.reconcile_once(host, want, "app", act=False) == ["restart"]
    assert host.calls == []  # observing only


def test_every_fetch_carries_a_timeout_under_the_interval(
    agent: types.ModuleType, state: Path
) -> None:
    clock = drive(agent, FakeHost(), intent, passes=3, state=state)
    assert clock.fetch_timeouts and set(clock.fetch_timeouts) == {30.0}
    with pytest.raises(ValueError, match="fetch_timeout"):
        drive(agent, FakeHost(), intent, passes=1, state=state, fetch_timeout=300.0)


def test_a_hanging_fetch_delays_enforcement_by_at_most_its_timeout(
    agent: types.ModuleType, state: Path
) -> None:
    # A blackholed connection: each fetch after the first hangs until its
    # timeout, while someone keeps stopping the service by hand.
    host = FakeHost(installed="2.14.1", running="2.14.1")
    calls = 0

    def hangs(*, timeout: float) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return intent()
        host.clock.now += timeout  # blocked for the whole timeout
        host.running = None
        raise TimeoutError("timed out")

    clock = FakeClock()
    host.clock = clock
    agent.run(
        host,
        hangs,
        str(state),
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 1.0,
        passes=6,
    )
    # Each pass is at most one timeout behind the schedule of an agent whose
    # server is up: every 300 s from the first pass.
    t0 = host.report_times[0]
    late = [t - (t0 + 300.0 * i) for i, t in enumerate(host.report_times)]
    assert len(late) == 6
    assert all(-1e-6 <= d <= 30.0 + 1e-6 for d in late), late
    assert host.calls.count(("start",)) >= 4  # drift was still corrected


def test_a_reporting_outage_does_not_stop_enforcement(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(installed="2.14.1", running="2.14.1", fail_reports=2)
    stops = iter([True, True, True, False])

    def fetch() -> Any:
        if next(stops, False):
            host.running = None  # drift before each of the first three passes
        return intent()

    clock = drive(agent, host, fetch, passes=4, state=state)
    # Two reports were lost, yet the agent kept its schedule and kept fixing.
    assert host.calls.count(("start",)) == 3
    assert clock.sleeps[1:] == pytest.approx([300.0] * 4)
    first, second = host.reports
    assert first["converged"] is True
    assert first["problem"] == "2 reports lost"  # the next report says so
    assert second["problem"] is None  # and the count starts again


class HangingReports(FakeHost):
    """A blackholed report endpoint: the first *hangs* reports block for their
    whole timeout, then fail; each start is timed."""

    def __init__(self, hangs: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hangs = hangs
        self.start_times: list[float] = []

    def start(self, unit: str) -> None:
        self.start_times.append(self.clock())
        super().start(unit)

    def report(self, *, timeout: float, **fields: Any) -> None:
        if self.hangs:
            self.hangs -= 1
            self.clock.now += timeout  # blocked until the client gives up
            raise TimeoutError("report timed out")
        super().report(timeout=timeout, **fields)


def test_a_hanging_report_endpoint_does_not_stop_enforcement(
    agent: types.ModuleType, state: Path
) -> None:
    host = HangingReports(hangs=4, installed="2.14.1", running="2.14.1")

    def fetch() -> Any:
        host.running = None  # drift before every pass
        return intent()

    clock = drive(agent, host, fetch, passes=6, state=state)
    t0 = clock.sleeps[0]
    assert set(host.report_timeouts) == {10.0}  # every report carries its timeout
    # drift was corrected on every pass, on the schedule of a healthy endpoint
    assert host.start_times == pytest.approx([t0 + 300.0 * i for i in range(6)])
    first, second = host.reports
    assert first["problem"] == "4 reports lost" and second["problem"] is None
    with pytest.raises(ValueError, match="report_timeout"):
        drive(agent, FakeHost(), intent, passes=1, state=state, report_timeout=280.0)


class SlowStart(FakeHost):
    """A service that answers only *delay* seconds after it is (re)started."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay
        self.ready_at = 0.0

    def _launch(self) -> None:
        super()._launch()
        self.ready_at = self.clock() + self.delay

    def running_version(self, unit: str) -> str | None:
        return self.running if self.clock() >= self.ready_at else None


def test_a_slow_starting_service_converges_in_one_pass(
    agent: types.ModuleType, state: Path
) -> None:
    # Review round 9: a service that takes 20 s to listen was reported
    # unconverged after every upgrade, and one slower than the backoff spent
    # the whole remediation budget.
    host = SlowStart(20.0, installed="2.14.0", running="2.14.0")
    drive(agent, host, intent, passes=2, state=state)
    assert host.calls == [("install", "2.14.1"), ("restart",)]
    assert [r["converged"] for r in host.reports] == [True, True]


def test_without_the_readiness_wait_a_slow_start_spends_the_budget(
    agent: types.ModuleType, state: Path
) -> None:
    host = SlowStart(60.0, installed="2.14.0", running="2.14.0")
    drive(agent, host, intent, passes=4, state=state, settle=0.0)
    # each pass restarts a process that has not yet answered, until the budget
    assert host.calls == [
        ("install", "2.14.1"),
        ("restart",),
        ("restart",),
        ("restart",),
    ]
    assert host.reports[3]["problem"].startswith("degraded")
    with pytest.raises(ValueError, match="settle"):
        drive(agent, FakeHost(), intent, passes=1, state=state, settle=270.0)


def test_an_active_unit_that_does_not_answer_is_restarted(
    agent: types.ModuleType, state: Path
) -> None:
    # Review round 11: a wedged process answers nothing, so its version reads
    # None; planning "start" for it left it hung, since start does nothing to
    # an active unit, and every pass spent the budget on it.
    host = FakeHost(installed="2.14.1", running="2.14.1", hung=True)
    seen = agent.observe(host, "app")
    assert seen.active is True and seen.running is None
    assert agent.plan(agent.validate(intent()), seen) == ["restart"]
    clock = drive(agent, host, intent, passes=2, state=state)
    assert host.calls == [("restart",)]
    assert (host.hung, host.running) == (False, "2.14.1")
    assert [r["converged"] for r in host.reports] == [True, True]
    # it gave the silent process `settle` seconds to answer before restarting
    assert host.report_times[0] == pytest.approx(clock.sleeps[0] + 30.0)


def test_start_alone_would_leave_a_hung_unit_hung(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(installed="2.14.1", running="2.14.1", hung=True)
    host.start("app")
    assert host.hung and agent.observe(host, "app").running is None


def test_an_inactive_unit_is_started_not_restarted(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(installed="2.14.1", running=None)
    seen = agent.observe(host, "app")
    assert seen.active is False
    assert agent.plan(agent.validate(intent()), seen) == ["start"]
    assert agent.plan(agent.validate(intent(running=False)), seen) == []
    hung = agent.observe(FakeHost(installed="2.14.1", hung=True), "app")
    assert agent.plan(agent.validate(intent(running=False)), hung) == ["stop"]


def test_a_unit_that_answers_within_settle_is_not_restarted(
    agent: types.ModuleType, state: Path
) -> None:
    # Started by systemd at boot, listening 12 s later: starting, not hung.
    host = SlowStart(12.0, installed="2.14.1", running="2.14.1")
    host.ready_at = agent.splay_offset(host.name, 240.0) + 12.0
    drive(agent, host, intent, passes=2, state=state)
    assert host.calls == []
    assert [r["converged"] for r in host.reports] == [True, True]


def test_the_same_generation_with_other_content_is_refused(
    agent: types.ModuleType, state: Path
) -> None:
    answers = [intent(7, "2.14.1"), intent(7, "2.14.2")]
    host = FakeHost(installed="2.14.1", running="2.14.1")
    drive(
        agent,
        host,
        lambda: answers.pop(0) if len(answers) > 1 else answers[0],
        passes=2,
        state=state,
    )
    assert host.calls == []  # no flip to 2.14.2 under generation 7
    assert "refused" in host.reports[-1]["problem"]
    assert agent.load_intent(str(state)).version == "2.14.1"


def test_the_state_file_is_replaced_atomically(
    agent: types.ModuleType, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent.save_intent(str(state), agent.validate(intent(7)))

    def crash(src: str, dst: str) -> None:
        raise OSError("power lost before the rename")

    monkeypatch.setattr(agent.os, "replace", crash)
    with pytest.raises(OSError):
        agent.save_intent(str(state), agent.validate(intent(8)))
    assert agent.load_intent(str(state)).generation == 7  # the old intent, whole
    assert os.listdir(state.parent) == [state.name]  # no temporary file left


def test_a_damaged_state_file_is_ignored(agent: types.ModuleType, state: Path) -> None:
    state.write_text('{"generation": 7, "vers')
    assert agent.load_intent(str(state)) is None
    state.write_text(json.dumps({"generation": 0, "version": "2.14.1"}))
    assert agent.load_intent(str(state)) is None


def test_splay_is_stable_per_host_and_spreads_a_fleet(
    agent: types.ModuleType, state: Path
) -> None:
    host = FakeHost(name="host-8", installed="2.14.1", running="2.14.1")
    first = drive(agent, host, intent, passes=1, state=state).sleeps[0]
    again = drive(agent, host, intent, passes=1, state=state).sleeps[0]
    assert first == again == agent.splay_offset("host-8", 240.0)
    offsets = [agent.splay_offset(f"host-{i}", 240.0) for i in range(10_000)]
    assert all(0.0 <= o < 240.0 for o in offsets)
    buckets = [0] * 8  # eight 30-second slots should each hold about 1,250 hosts
    for offset in offsets:
        buckets[int(offset // 30)] += 1
    assert min(buckets) > 1_000
    assert agent.splay_offset("any", 0) == 0.0
    tiny = [agent.splay_offset(f"host-{i}", 0.0005) for i in range(100)]  # < 1 ms
    assert all(0.0 <= o < 0.0005 for o in tiny) and len(set(tiny)) > 90


# -- The YAML examples --------------------------------------------------------


def yaml_docs(site: Site, name: str) -> list[Any]:
    return list(yaml.safe_load_all(named_block(site, DOC, name)))


def essay_play(site: Site) -> dict[str, Any]:
    (play,) = yaml_docs(site, "puppets-and-octopi-rolling-playbook")[0]
    return play


def module_of(task: dict[str, Any]) -> str:
    return next(k for k in task if k.startswith("ansible."))


def the_task(play: dict[str, Any], module: str) -> dict[str, Any]:
    (task,) = [t for t in play["tasks"] if module_of(t) == module]
    return task


def test_the_playbook_rolls_in_batches_and_restarts_through_its_handler(
    site: Site,
) -> None:
    play = essay_play(site)
    assert play["serial"] == [1, "1%", "10%"]  # a one-host canary batch first
    assert play["max_fail_percentage"] == 5
    handlers = {h["name"] for h in play["handlers"]}
    notified = {t["notify"] for t in play["tasks"] if "notify" in t}
    assert notified == handlers == {"Restart app"}
    restart = play["handlers"][0]["ansible.builtin.service"]
    assert restart == {"name": "app", "state": "restarted"}
    apt = the_task(play, "ansible.builtin.apt")["ansible.builtin.apt"]
    assert apt["name"] == "app={{ app_version }}-*"  # Debian versions carry a revision
    assert play["vars"] == {"app_version": "2.14.1", "fleet_budget": 20}
    assert apt["allow_downgrade"] is True  # the same play can roll back
    assert apt["update_cache"] is True
    # review round 10: a cache fetched before the release hid the new version
    assert "cache_valid_time" not in apt
    assert apt["policy_rc_d"] == 101  # the package may not restart the service
    assert play["gather_facts"] is False  # the gate is the first contact
    assert isinstance(play["timeout"], int) and play["timeout"] > 0


def test_the_pin_matches_every_revision_of_2_14_1_and_nothing_else(
    site: Site,
) -> None:
    # The apt module matches a version pin with fnmatch against apt's own
    # version string, which carries the epoch when there is one.
    play = essay_play(site)
    apt = the_task(play, "ansible.builtin.apt")
    pattern = (
        jinja2.Environment()
        .from_string(apt["ansible.builtin.apt"]["name"])
        .render(**play["vars"])
        .split("=", 1)[1]
    )
    assert fnmatch.fnmatch("2.14.1-1", pattern)
    assert fnmatch.fnmatch("2.14.1-3ubuntu1", pattern)
    assert not fnmatch.fnmatch("2.14.10-1", pattern)
    assert not fnmatch.fnmatch("2.14.0-1", pattern)
    # With an epoch the pin must name it, as the example's comment says.
    assert not fnmatch.fnmatch("1:2.14.1-1", pattern)
    assert '"app=1:{{ app_version }}-*"' in named_block(
        site, DOC, "puppets-and-octopi-rolling-playbook"
    )


def test_the_version_is_named_once_so_a_rollback_changes_one_line(
    site: Site,
) -> None:
    # Review round 4: the version was hard-coded in four places, so changing
    # only the pin to roll back made every host fail its final check.
    text = named_block(site, DOC, "puppets-and-octopi-rolling-playbook")
    assert text.count("2.14.1") == 1, text


def test_the_playbook_gates_restarts_and_observes_in_order(site: Site) -> None:
    play = essay_play(site)
    assert "force_handlers" not in play  # see the stand-in runs below for why
    tasks = play["tasks"]
    names = [module_of(t) for t in tasks]
    assert names[:2] == ["ansible.builtin.ping", "ansible.builtin.fail"]
    assert play["ignore_unreachable"] is True  # so the fail tasks can count lost hosts
    assert tasks[1]["when"] == "reach.unreachable | default(false)"
    flushes = [i for i, t in enumerate(tasks) if t.get("ansible.builtin.meta")]
    assert [tasks[i]["ansible.builtin.meta"] for i in flushes] == ["flush_handlers"] * 2
    first, second = flushes
    assert all("notify" in t for t in tasks[2:first])  # every change notifies
    assert names[first + 1 : second] == [
        "ansible.builtin.service",
        "ansible.builtin.uri",
    ]
    assert tasks[second - 1]["notify"] == "Restart app"  # a stale process
    # it ends observing, then fails a host the observation could not reach
    assert names[second + 1 :] == ["ansible.builtin.uri", "ansible.builtin.fail"]
    assert "notify" not in tasks[-2]
    # review round 10: every task that changes the host registers, and the last
    # task fails a host that any of them, or the restart, could not reach
    registered = {t["register"] for t in tasks[2:first]} | {
        t["register"] for t in tasks if module_of(t) == "ansible.builtin.service"
    }
    assert registered == {"pkg", "conf", "svc"}
    assert play["handlers"][0]["register"] == "restart"
    assert tasks[-1]["when"] == (
        "[pkg, conf, svc, live, restart | default({})]"
        ' | select("unreachable") | list | length > 0'
    )


def unguarded_tasks(play: dict[str, Any]) -> list[str]:
    """The CI check the prose names: every task and handler but the gate's
    ping, the fail tasks and the flushes must register a result that the last
    task's expression reads. Return the names of those that do not."""
    last = play["tasks"][-1]["when"]
    missing = []
    for task in play["tasks"][1:] + play["handlers"]:
        if module_of(task) in ("ansible.builtin.fail", "ansible.builtin.meta"):
            continue
        register = task.get("register")
        if register is None or not re.search(rf"\b{register}\b", last):
            missing.append(task["name"])
    return missing


def test_every_task_that_needs_the_host_is_read_by_the_last_task(site: Site) -> None:
    play = essay_play(site)
    assert module_of(play["tasks"][0]) == "ansible.builtin.ping"  # the gate's own
    assert unguarded_tasks(play) == []
    # the check fails the next engineer's task added without a register
    added = copy.deepcopy(play)
    added["tasks"].insert(
        3, {"name": "Drop a cron job", "ansible.builtin.copy": {"dest": "/x"}}
    )
    assert unguarded_tasks(added) == ["Drop a cron job"]
    added["tasks"][3]["register"] = "cron"  # registered but never read
    assert unguarded_tasks(added) == ["Drop a cron job"]


def uri_tasks(site: Site) -> tuple[dict[str, Any], dict[str, Any]]:
    observe, verify = [
        t for t in essay_play(site)["tasks"] if "ansible.builtin.uri" in t
    ]
    return observe, verify


def test_both_checks_wait_for_a_service_that_is_still_starting(site: Site) -> None:
    for check in uri_tasks(site):
        assert check["ansible.builtin.uri"]["return_content"] is True
        assert check["until"] == "live.status == 200"
        assert check["retries"] * check["delay"] >= 30  # seconds: 10 tries 3 s apart


@pytest.mark.parametrize(
    ("status", "content", "changed", "fails"),
    [
        (200, "2.14.1\n", False, False),
        (200, "2.14.0", True, True),  # the old process is still serving
        (-1, None, False, True),  # nothing answers on the port
    ],
)
def test_the_checks_restart_a_stale_process_and_fail_a_silent_one(
    site: Site, status: int, content: str | None, changed: bool, fails: bool
) -> None:
    observe, verify = uri_tasks(site)
    live = (
        {"status": status}
        if content is None
        else {"status": status, "content": content}
    )
    env = jinja2.Environment()
    version = essay_play(site)["vars"]["app_version"]
    for check, expected in (
        (observe["changed_when"], changed),
        (verify["failed_when"], fails),
    ):
        result = env.compile_expression(check)(live=live, app_version=version)
        assert bool(result) is expected


ANSIBLE_HOSTS = [f"h{i:02d}" for i in range(1, 21)]

#: A connection plugin for a host the control node cannot reach: every
#: connection attempt fails, as it would across a network partition.
PARTITIONED_CONNECTION = '''
from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as Local

DOCUMENTATION = """
name: partitioned
short_description: a host behind a network partition
description: [Every connection attempt fails.]
author: the essay's tests
"""


class Connection(Local):
    transport = "partitioned"

    def _connect(self):
        raise AnsibleConnectionFailure("no route to host (test stand-in)")
'''


#: A host that answers the first module run (the reachability gate) and is
#: lost after it: its module's clean-up leaves a marker, and once the marker
#: exists every command fails, as after a network restart gone wrong.
LOST_CONNECTION = '''
import os
from pathlib import Path

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as Local

DOCUMENTATION = """
name: lost
short_description: a host lost after its first module run
description: [Answers until its first module's clean-up, then never again.]
author: the essay's tests
"""


class Connection(Local):
    transport = "lost"

    def exec_command(self, cmd, in_data=None, sudoable=True):
        marker = Path(os.environ["LOST_MARKER"])
        if marker.exists():
            raise AnsibleConnectionFailure("host lost mid-run (test stand-in)")
        result = super().exec_command(cmd, in_data, sudoable)
        if "rm -f -r" in cmd:
            marker.touch()
        return result
'''


#: Review round 10: a host that answers the gate, misses the next module run
#: (a connection dropped under load, by sshd's MaxStartups or a NAT table) and
#: answers every run after it.
FLAKY_CONNECTION = '''
import os
from pathlib import Path

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as Local

DOCUMENTATION = """
name: flaky
short_description: a host that misses one module run after its first
description: [Loses the connection once, after its first module's clean-up.]
author: the essay's tests
"""


class Connection(Local):
    transport = "flaky"

    def exec_command(self, cmd, in_data=None, sudoable=True):
        gated = Path(os.environ["LOST_MARKER"])
        blipped = Path(os.environ["LOST_MARKER"] + ".blipped")
        if gated.exists() and not blipped.exists():
            blipped.touch()
            raise AnsibleConnectionFailure("connection dropped once (test stand-in)")
        result = super().exec_command(cmd, in_data, sudoable)
        if "rm -f -r" in cmd:
            gated.touch()
        return result
'''


def ansible_env(tmp_path: Path) -> dict[str, str]:
    plugins = tmp_path / "connection_plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "partitioned.py").write_text(PARTITIONED_CONNECTION)
    (plugins / "lost.py").write_text(LOST_CONNECTION)
    (plugins / "flaky.py").write_text(FLAKY_CONNECTION)
    return {
        **os.environ,
        "LOST_MARKER": str(tmp_path / "lost-marker"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_CONNECTION_PLUGINS": str(plugins),
        "ANSIBLE_FORCE_COLOR": "false",
        "ANSIBLE_NOCOLOR": "true",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }


def stand_in_run(
    site: Site,
    tmp_path: Path,
    fail_task: str | None = None,
    *,
    unreachable: bool = False,
    lost: bool = False,
    stale: bool = False,
    changed: bool = True,
    force_handlers: bool | None = None,
    flush: bool = True,
    odd: str = "h03",
    blip: str | None = None,
    hang: str | None = None,
    last_when: str | None = None,
) -> tuple[int, set[str], set[str]]:
    """Run the essay's play on 20 local hosts, with its reachability gate as
    written and its other modules replaced by ``debug`` stand-ins.

    *odd* (h03 unless told) is the odd host: it fails *fail_task*, or cannot be reached, or runs
    a stale process that the version check notices. With *blip*, that task
    needs the host and *odd* misses it, then answers again; with *hang*, that
    task hangs on *odd* for two minutes, longer than the play's timeout, cut
    to ten seconds (time enough for the other tasks on a loaded machine).
    *last_when* replaces the last task's condition. Return the exit status,
    the hosts restarted and the hosts that ran any stand-in task."""
    play = {**essay_play(site), "become": False}
    assert play["gather_facts"] is False  # as the essay's play has it
    if force_handlers is not None:
        play["force_handlers"] = force_handlers
    if hang is not None:
        assert play["timeout"] > 10  # the essay's, kept where it is: on the play
        play["timeout"] = 10
    tasks = []
    for task in play["tasks"]:
        module = module_of(task)
        if module == "ansible.builtin.meta":
            if flush:
                tasks.append(task)
            continue
        if module in ("ansible.builtin.ping", "ansible.builtin.fail"):
            tasks.append(dict(task))  # the gate runs as written
            continue
        # a check that needs the host, and a result
        if (lost and module == "ansible.builtin.uri") or task["name"] == blip:
            tasks.append(
                {
                    "name": task["name"],
                    "ansible.builtin.ping": None,
                    "register": task["register"],
                }
            )
            continue
        if task["name"] == hang:
            tasks.append(
                {
                    "name": task["name"],
                    "ansible.builtin.command": "sleep 120",
                    "when": f"inventory_hostname == '{odd}'",
                    "register": task["register"],
                }
            )
            continue
        stand_in: dict[str, Any] = {
            "name": task["name"],
            "ansible.builtin.debug": {
                "msg": f"{task['name']} {{{{ inventory_hostname }}}}"
            },
        }
        if "changed_when" in task:  # the version check: only a stale process changes
            stand_in["changed_when"] = (
                f"inventory_hostname == '{odd}'" if stale else False
            )
        elif "notify" in task:  # apt and template report a change, as on an upgrade
            stand_in["changed_when"] = changed
        if "notify" in task:
            stand_in["notify"] = task["notify"]
        if "register" in task:  # the last task reads every registered result
            stand_in["register"] = task["register"]
        if task["name"] == fail_task:
            stand_in["failed_when"] = f"inventory_hostname == '{odd}'"
        tasks.append(stand_in)
    assert fail_task is None or any("failed_when" in t for t in tasks), fail_task
    assert blip is None or any(t["name"] == blip and "register" in t for t in tasks)
    if last_when is not None:
        tasks[-1]["when"] = last_when
    play["tasks"] = tasks
    play["handlers"] = [
        {
            "name": h["name"],
            "ansible.builtin.debug": {
                "msg": f"{h['name']} {{{{ inventory_hostname }}}}"
            },
        }
        for h in play["handlers"]
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    local = f"ansible_connection=local ansible_python_interpreter={sys.executable}"
    connection = local
    if unreachable:
        connection = "ansible_connection=partitioned"
    elif lost:
        connection = local.replace("=local", "=lost")
    elif blip:
        connection = local.replace("=local", "=flaky")
    (tmp_path / "hosts").write_text(
        "[app_servers]\n"
        + "".join(f"{h} {connection if h == odd else local}\n" for h in ANSIBLE_HOSTS)
    )
    result = subprocess.run(
        [
            BIN / "ansible-playbook",
            "-i",
            str(tmp_path / "hosts"),
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(tmp_path),
        check=False,
    )
    said = re.findall(r'"msg": "(.+) (h\d\d)"', result.stdout)
    restarted = {host for msg, host in said if msg == "Restart app"}
    return result.returncode, restarted, {host for _, host in said}


# serial [1, "1%", "10%"] on 20 hosts: h01, then h02 (1 % rounds up to one
# host), then pairs, so h03 shares the third batch with h04.
FIRST_TWO_BATCHES = {"h01", "h02", "h03", "h04"}  # up to h03's batch


def test_a_healthy_run_upgrades_and_restarts_every_host(
    site: Site, tmp_path: Path
) -> None:
    rc, restarted, touched = stand_in_run(site, tmp_path)
    assert rc == 0
    assert restarted == touched == set(ANSIBLE_HOSTS)


def test_an_unreachable_host_trips_the_breaker_through_the_gate(
    site: Site, tmp_path: Path
) -> None:
    # Without the gate, an unreachable host is dropped, not failed, and
    # max_fail_percentage never counts it: all ten batches would run.
    rc, restarted, touched = stand_in_run(site, tmp_path, unreachable=True)
    assert rc == 2  # a failed host, not merely an unreachable one
    assert touched == restarted == {"h01", "h02"}  # batch 2 stopped at the gate


def test_a_host_lost_after_the_gate_trips_the_breaker_at_the_end(
    site: Site, tmp_path: Path
) -> None:
    # Review round 6: h03 passes the gate and is lost afterwards. Without
    # play-level ignore_unreachable and the last fail task it was dropped
    # uncounted, and every batch ran.
    rc, _restarted, touched = stand_in_run(site, tmp_path, lost=True)
    assert rc == 2
    assert touched == FIRST_TWO_BATCHES
    assert (tmp_path / "lost-marker").exists()  # h03 really was lost


BLIPPED = "Render the config file"


def test_a_host_that_misses_one_task_and_answers_again_trips_the_breaker(
    site: Site, tmp_path: Path
) -> None:
    # Review round 10: ignore_unreachable counts a task the host missed as ok,
    # so a host that lost only the template task, then answered the checks,
    # passed with its old configuration.
    rc, _restarted, touched = stand_in_run(site, tmp_path, blip=BLIPPED)
    assert (tmp_path / "lost-marker.blipped").exists()  # h03 really missed it
    assert rc == 2
    assert touched == FIRST_TWO_BATCHES


def test_checking_the_last_result_alone_passes_a_host_that_missed_a_task(
    site: Site, tmp_path: Path
) -> None:
    _rc, _restarted, touched = stand_in_run(
        site, tmp_path, blip=BLIPPED, last_when="live.unreachable | default(false)"
    )
    assert (tmp_path / "lost-marker.blipped").exists()
    assert touched == set(ANSIBLE_HOSTS)  # every batch ran, h03 included


def test_a_task_that_hangs_fails_its_host_and_trips_the_breaker(
    site: Site, tmp_path: Path
) -> None:
    # The play's timeout, cut to ten seconds, ends h03's two-minute hang.
    rc, _restarted, touched = stand_in_run(site, tmp_path, hang=BLIPPED)
    assert rc == 2
    assert touched == FIRST_TWO_BATCHES


def test_without_the_gate_an_unreachable_host_never_trips_the_breaker(
    tmp_path: Path,
) -> None:
    # The behaviour the gate exists for, shown on ansible-core itself.
    play = {
        "hosts": "all",
        "gather_facts": False,
        "serial": "10%",
        "max_fail_percentage": 5,
        "tasks": [
            {"ansible.builtin.ping": None},
            {"ansible.builtin.debug": {"msg": "upgraded {{ inventory_hostname }}"}},
        ],
    }
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play]))
    local = f"ansible_connection=local ansible_python_interpreter={sys.executable}"
    (tmp_path / "hosts").write_text(
        "".join(
            f"{h} {'ansible_connection=partitioned' if h == 'h03' else local}\n"
            for h in ANSIBLE_HOSTS
        )
    )
    result = subprocess.run(
        [
            BIN / "ansible-playbook",
            "-i",
            str(tmp_path / "hosts"),
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(tmp_path),
        check=False,
    )
    upgraded = set(re.findall(r'"msg": "upgraded (h\d\d)"', result.stdout))
    assert upgraded == set(ANSIBLE_HOSTS) - {"h03"}  # every batch ran
    assert "UNREACHABLE" in result.stdout
    assert result.returncode != 0  # reported, but only at the end


def test_a_failed_version_check_trips_the_breaker_after_restarting(
    site: Site, tmp_path: Path
) -> None:
    rc, restarted, touched = stand_in_run(
        site, tmp_path, "Fail the host unless the process now reports app_version"
    )
    assert rc == 2
    assert touched == FIRST_TWO_BATCHES  # 1 of 2 failed > 5 %: later batches untouched
    assert restarted == FIRST_TWO_BATCHES  # the flush ran before the check failed


def test_a_failing_canary_stops_the_run_after_one_host(
    site: Site, tmp_path: Path
) -> None:
    # Review round 5: with serial "10%" the first change reached a tenth of
    # the fleet at once. Now the first batch is one host.
    rc, restarted, touched = stand_in_run(
        site,
        tmp_path,
        "Fail the host unless the process now reports app_version",
        odd="h01",
    )
    assert rc == 2
    assert touched == restarted == {"h01"}  # no other host was changed


def essay_batches(site: Site, fleet: int) -> list[int]:
    """The batch sizes ansible-core itself cuts from the play's serial list."""
    from ansible.executor.playbook_executor import PlaybookExecutor

    class Inventory:
        def get_hosts(self, pattern: str, order: str | None = None) -> list[str]:
            return [f"host{i}" for i in range(fleet)]

    play = types.SimpleNamespace(
        hosts="app_servers", order=None, serial=essay_play(site)["serial"]
    )
    executor = object.__new__(PlaybookExecutor)
    executor._inventory = Inventory()
    return [len(batch) for batch in executor._get_serialized_batches(play)]


def test_on_ten_thousand_hosts_the_batches_are_1_then_100_then_1000(
    site: Site,
) -> None:
    sizes = essay_batches(site, 10_000)
    assert sizes[:3] == [1, 100, 1000]
    assert sizes[2:-1] == [1000] * 9 and sizes[-1] == 899
    assert sum(sizes) == 10_000


def test_the_breaker_is_per_batch_not_a_fleet_budget(site: Site) -> None:
    # linear.py trips when failed / batch size > max_fail_percentage / 100:
    # the most failures each batch can hold without tripping, summed.
    limit = essay_play(site)["max_fail_percentage"] / 100
    tolerated = sum(
        max(f for f in range(size + 1) if f / size <= limit)
        for size in essay_batches(site, 10_000)
    )
    assert 450 <= tolerated <= 550, tolerated  # "about 500 broken hosts"
    assert max(f for f in range(1001) if f / 1000 <= limit) == 50  # "fifty"


def budget_run(
    site: Site, tmp_path: Path, failing: set[str], budget: int
) -> tuple[int, set[str], str]:
    """Run the essay's pre-task, as written, on 20 local hosts in batches of
    two, with a breaker loose enough (50 %) that one failure per batch never
    trips it, and a main task that fails the *failing* hosts. Return the exit
    status, the hosts the main task reached and the output."""
    play = essay_play(site)
    (pre,) = play["pre_tasks"]
    test = {
        "hosts": "all",
        "gather_facts": False,
        "serial": 2,
        "max_fail_percentage": 50,
        "vars": {"fleet_budget": budget},
        "pre_tasks": [pre],
        "tasks": [
            {
                "ansible.builtin.fail": {"msg": "broken"},
                "when": f"inventory_hostname in {sorted(failing)}",
            },
            {"ansible.builtin.debug": {"msg": "rolled {{ inventory_hostname }}"}},
        ],
    }
    (tmp_path / "play.yml").write_text(yaml.safe_dump([test], sort_keys=False))
    result = subprocess.run(
        [
            BIN / "ansible-playbook",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-i",
            ",".join(ANSIBLE_HOSTS) + ",",
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(tmp_path),
        check=False,
    )
    reached = set(re.findall(r"fatal: \[(h\d\d)\]: FAILED! => .*broken", result.stdout))
    reached |= set(re.findall(r'"msg": "rolled (h\d\d)"', result.stdout))
    return result.returncode, reached, result.stdout


def test_the_play_sets_a_fleet_budget_of_twenty_hosts(site: Site) -> None:
    play = essay_play(site)
    assert play["vars"]["fleet_budget"] == 20
    (pre,) = play["pre_tasks"]
    assert module_of(pre) == "ansible.builtin.fail"
    assert pre["run_once"] is True and pre["any_errors_fatal"] is True
    assert "ansible_play_hosts_all | difference(ansible_play_hosts)" in pre["when"]


def test_the_fleet_budget_stops_what_the_per_batch_breaker_lets_through(
    site: Site, tmp_path: Path
) -> None:
    # Review round 12: one failure in each batch of two never trips a 50 %
    # breaker; the budget of 2 stops the run before the fifth batch (h09,
    # h10), once h03, h05 and h07 have failed.
    failing = {"h03", "h05", "h07", "h09", "h11"}
    rc, reached, out = budget_run(site, tmp_path, failing, budget=2)
    assert rc == 2
    assert reached == {f"h{i:02d}" for i in range(1, 9)}, out
    assert "fleet budget spent" in out


def test_without_a_fleet_budget_every_batch_runs(site: Site, tmp_path: Path) -> None:
    failing = {"h03", "h05", "h07", "h09", "h11"}
    rc, reached, out = budget_run(site, tmp_path, failing, budget=20)
    assert rc == 2  # five hosts failed, but the run went on
    assert reached == set(ANSIBLE_HOSTS), out
    assert "fleet budget spent" not in out


def test_a_rerun_restarts_a_stale_process_and_nothing_else(
    site: Site, tmp_path: Path
) -> None:
    # The second run after a stranded restart: package and file are in place,
    # so only the version check can notice h03's old process.
    rc, restarted, touched = stand_in_run(site, tmp_path, stale=True, changed=False)
    assert rc == 0
    assert touched == set(ANSIBLE_HOSTS)
    assert restarted == {"h03"}


def test_a_breaker_trip_strands_the_restarts_of_the_batchs_healthy_hosts(
    site: Site, tmp_path: Path
) -> None:
    rc, restarted, touched = stand_in_run(site, tmp_path, "Render the config file")
    assert rc == 2
    assert touched == FIRST_TWO_BATCHES
    assert restarted == {"h01", "h02"}  # h04 got its package and file, no restart


def test_without_the_flush_the_failing_host_is_never_restarted(
    site: Site, tmp_path: Path
) -> None:
    rc, restarted, touched = stand_in_run(
        site,
        tmp_path,
        "Fail the host unless the process now reports app_version",
        flush=False,
    )
    assert rc == 2
    assert touched == FIRST_TWO_BATCHES
    assert "h03" not in restarted  # the documented handler trap


@pytest.mark.parametrize(
    "fail_task",
    [
        "Render the config file",
        "Fail the host unless the process now reports app_version",
    ],
)
def test_force_handlers_would_switch_the_breaker_off(
    site: Site, tmp_path: Path, fail_task: str
) -> None:
    rc, restarted, touched = stand_in_run(
        site, tmp_path, fail_task, force_handlers=True, flush=False
    )
    # ansible-core 2.19: the failing host never counts; all ten batches run.
    assert rc == 2
    assert touched == restarted == set(ANSIBLE_HOSTS)


def run_reproducer(site: Site, tmp_path: Path, text: str) -> str:
    """Run the essay's force_handlers reproducer with the command in its comment."""
    command = text.splitlines()[0]
    assert command.startswith("# ansible-playbook ")
    argv = command[2:].split()
    assert argv[-1] == "this.yml"
    (tmp_path / "this.yml").write_text(text)
    env = {**ansible_env(tmp_path), "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    result = subprocess.run(
        [BIN / argv[0], *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr  # h03 failed
    return result.stdout


def test_the_force_handlers_reproducer_runs_every_batch(
    site: Site, tmp_path: Path
) -> None:
    text = named_block(site, DOC, "puppets-and-octopi-force-handlers")
    assert "force_handlers: true" in text
    out = run_reproducer(site, tmp_path, text)
    assert out.count('"msg": "still rolling"') == 19  # every host but h03
    assert out.count('"msg": "restarted"') == 20


def test_without_force_handlers_the_reproducer_stops_after_h03s_batch(
    site: Site, tmp_path: Path
) -> None:
    text = named_block(site, DOC, "puppets-and-octopi-force-handlers")
    out = run_reproducer(
        site, tmp_path, text.replace("  force_handlers: true\n", "", 1)
    )
    assert out.count('"msg": "still rolling"') == 2  # h01 and h02 only
    assert out.count('"msg": "restarted"') == 2


def test_the_fleet_budget_counts_what_force_handlers_hides_from_the_breaker(
    site: Site, tmp_path: Path
) -> None:
    # Review round 12: failures the breaker misses still leave
    # ansible_play_hosts, so the essay's pre-task, with a budget of 0, stops
    # the reproducer before h05's batch: h01, h02 and h04 roll, h03 fails.
    text = named_block(site, DOC, "puppets-and-octopi-force-handlers")
    (pre,) = essay_play(site)["pre_tasks"]
    pre_yaml = yaml.safe_dump({"pre_tasks": [pre]}, sort_keys=False)
    pre_yaml = "\n".join("  " + line for line in pre_yaml.splitlines())
    budgeted = text.replace(
        "  tasks:\n", f"  vars: {{fleet_budget: 0}}\n{pre_yaml}\n  tasks:\n", 1
    )
    assert budgeted != text
    out = run_reproducer(site, tmp_path, budgeted)
    assert out.count('"msg": "still rolling"') == 3, out
    assert "fleet budget spent" in out


class FakeApp:
    """A service on localhost that reports its version at /version and, on
    /restart, stops listening for a while before it comes back with the
    version now on disk: a restart that returns before the port is open.

    Timing alone cannot be trusted on a loaded machine (ansible-playbook may
    take longer to start than the service), so a process that is starting
    also answers its first *not_ready* requests by closing the connection
    unanswered, which the uri module reports as status -1, as it does for a
    refused connection. Every start, the first and each restart, does so."""

    def __init__(
        self, running: str, on_disk: str, down_for: float, not_ready: int = 1
    ) -> None:
        self.running, self.on_disk, self.down_for = running, on_disk, down_for
        self.not_ready = not_ready
        self.unanswered = 0  # requests dropped while starting, all starts
        self.restarts = 0
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server: ThreadingHTTPServer | None = None
        self.closed = False

    def listen(self, after: float = 0.0) -> None:
        app = self
        starting = [self.not_ready]  # this start's requests still to drop

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if starting[0] > 0:
                    starting[0] -= 1
                    app.unanswered += 1
                    self.close_connection = True
                    return  # no status line: the client sees no response
                body = (app.running + "\n").encode()
                if self.path == "/restart":
                    body = b"restarting\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if self.path == "/restart":
                    threading.Thread(target=app.restart, daemon=True).start()

            def log_message(self, *args: Any) -> None:
                pass

        def start() -> None:
            time.sleep(after)
            if self.closed:
                return
            server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            self.server = server
            threading.Thread(target=server.serve_forever, daemon=True).start()

        threading.Thread(target=start, daemon=True).start()

    def restart(self) -> None:
        self.restarts += 1
        self.stop()
        self.running = self.on_disk
        self.listen(after=self.down_for)

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def real_check_run(
    site: Site,
    tmp_path: Path,
    app: FakeApp,
    delay: float = 0.5,
    version: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the play's two version checks and its handler flush as written,
    against the fake service, with the restart handler pointed at /restart
    and the retry delay shortened (the retry count is the essay's)."""
    play = essay_play(site)
    first = next(i for i, t in enumerate(play["tasks"]) if "ansible.builtin.uri" in t)
    tasks = copy.deepcopy(play["tasks"][first:])
    for task in tasks:
        if "ansible.builtin.uri" in task:
            url = task["ansible.builtin.uri"]["url"]
            assert url == "http://127.0.0.1:8080/version"
            task["ansible.builtin.uri"]["url"] = url.replace("8080", str(app.port))
            task["delay"] = delay
    handler = {
        "name": "Restart app",
        "ansible.builtin.uri": {"url": f"http://127.0.0.1:{app.port}/restart"},
    }
    play_vars = dict(play["vars"])
    if version is not None:  # a rollback edits only this one variable
        play_vars["app_version"] = version
    # the registered results of the tasks before the checks, which this run
    # leaves out, as reachable hosts leave them; the last task reads them
    earlier = {t["register"] for t in play["tasks"][:first] if "register" in t}
    assert earlier == {"reach", "pkg", "conf", "svc"}
    check_play = {
        "hosts": "all",
        "gather_facts": False,
        "vars": {**play_vars, **{name: {} for name in earlier}},
        "tasks": tasks,
        "handlers": [handler],
    }
    (tmp_path / "check.yml").write_text(yaml.safe_dump([check_play], sort_keys=False))
    (tmp_path / "hosts").write_text(
        f"h01 ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    try:
        return subprocess.run(
            [
                BIN / "ansible-playbook",
                "-i",
                str(tmp_path / "hosts"),
                str(tmp_path / "check.yml"),
            ],
            capture_output=True,
            text=True,
            env=ansible_env(tmp_path),
            check=False,
            timeout=180,
        )
    finally:
        app.closed = True
        app.stop()


def test_the_check_waits_for_a_service_that_is_slow_to_start(
    site: Site, tmp_path: Path
) -> None:
    app = FakeApp(running="2.14.1", on_disk="2.14.1", down_for=0.0)
    app.listen(after=2.0)  # the service is still starting when the check begins
    result = real_check_run(site, tmp_path, app)
    assert result.returncode == 0, result.stdout
    assert app.unanswered == 1  # the first request found no answer...
    assert "RETRYING" in result.stdout  # ...and it waited instead of failing the host
    assert app.restarts == 0  # a healthy process is left alone


def test_the_check_restarts_a_stale_process_and_waits_for_it(
    site: Site, tmp_path: Path
) -> None:
    app = FakeApp(running="2.14.0", on_disk="2.14.1", down_for=2.0)
    app.listen()
    result = real_check_run(site, tmp_path, app)
    assert result.returncode == 0, result.stdout
    assert app.restarts == 1 and app.running == "2.14.1"
    assert app.unanswered == 2  # one unanswered request per start, both retried
    assert "RETRYING" in result.stdout  # the second check waited for the port


def test_the_check_fails_a_process_that_stays_stale(site: Site, tmp_path: Path) -> None:
    app = FakeApp(running="2.14.0", on_disk="2.14.0", down_for=0.5)
    app.listen()
    result = real_check_run(site, tmp_path, app)
    assert result.returncode == 2, result.stdout
    assert app.restarts == 1  # restarted once, still wrong: the host fails


def test_the_check_fails_a_silent_process_without_restarting_it(
    site: Site, tmp_path: Path
) -> None:
    # Review round 13: a process that never answers is not repaired by the push,
    # as the chapter now says; the first check gives up and the host fails.
    app = FakeApp(running="2.14.1", on_disk="2.14.1", down_for=0.0, not_ready=10**6)
    app.listen()
    result = real_check_run(site, tmp_path, app, delay=0.2)
    assert result.returncode == 2, result.stdout
    assert app.restarts == 0  # push does not restart what it cannot see
    assert app.unanswered == 11  # the first try and its ten retries, then no more


def test_a_rollback_changes_only_app_version(site: Site, tmp_path: Path) -> None:
    # 2.14.1 is running; the operator sets app_version to 2.14.0 and the
    # package on disk is now 2.14.0. The checks restart the process once and
    # then accept it; with the version hard-coded they would leave it alone.
    app = FakeApp(running="2.14.1", on_disk="2.14.0", down_for=0.5)
    app.listen()
    result = real_check_run(site, tmp_path, app, version="2.14.0")
    assert result.returncode == 0, result.stdout
    assert app.restarts == 1 and app.running == "2.14.0"


@pytest.mark.parametrize(
    "name",
    ["puppets-and-octopi-rolling-playbook", "puppets-and-octopi-rolling-excerpt"],
)
def test_the_playbook_passes_ansibles_syntax_check(
    site: Site, tmp_path: Path, name: str
) -> None:
    playbook = tmp_path / "rollout.yml"
    playbook.write_text(named_block(site, DOC, name))
    result = subprocess.run(
        [
            BIN / "ansible-playbook",
            "--syntax-check",
            "-i",
            "app_servers_host,",
            str(playbook),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def excerpt_mismatches(full: dict[str, Any], excerpt: dict[str, Any]) -> list[str]:
    """What in the chapter's excerpt is not the full play's, word for word: every
    play keyword must have the full play's value (``vars`` may be a subset), and
    its tasks must be the full play's tasks, unchanged and in the same order."""
    problems = []
    for key, value in excerpt.items():
        if key == "tasks":
            continue
        theirs = full.get(key)
        if key == "vars" and isinstance(value, dict) and isinstance(theirs, dict):
            theirs = {k: theirs.get(k) for k in value}
        if value != theirs:
            problems.append(f"{key}: {value!r} in the excerpt, {theirs!r} in the play")
    remaining = iter(full["tasks"])
    for task in excerpt.get("tasks", []):
        if not any(task == other for other in remaining):
            problems.append(f"task {task.get('name')!r} is not the play's, in order")
    return problems


def test_the_chapters_excerpt_is_the_appendix_play_cut_not_changed(site: Site) -> None:
    # Review round 13: the chapter shows about 30 lines of the play; they must be
    # the play the stand-in runs test, not a second, drifting copy.
    text = named_block(site, DOC, "puppets-and-octopi-rolling-excerpt")
    assert 25 <= len(text.splitlines()) <= 45
    (excerpt,) = yaml.safe_load(text)
    full = essay_play(site)
    assert excerpt_mismatches(full, excerpt) == []
    # it keeps what the chapter's prose explains: the batches, the breaker, the
    # reachability gate and the final version check
    for key in ("serial", "max_fail_percentage", "ignore_unreachable"):
        assert key in excerpt
    tasks = excerpt["tasks"]
    assert tasks[:2] == full["tasks"][:2]  # the gate
    assert tasks[-1] == full["tasks"][-2]  # the check that fails a stale process
    # the comparison can fail: a changed breaker, a changed or reordered task
    changed = copy.deepcopy(excerpt)
    changed["max_fail_percentage"] = 10
    assert excerpt_mismatches(full, changed)
    changed = copy.deepcopy(excerpt)
    changed["tasks"][-1]["retries"] = 1
    assert excerpt_mismatches(full, changed)
    changed = copy.deepcopy(excerpt)
    changed["tasks"].reverse()
    assert excerpt_mismatches(full, changed)


def test_the_apt_task_uses_only_documented_options(site: Site, tmp_path: Path) -> None:
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "home")}
    docs = subprocess.run(
        [BIN / "ansible-doc", "--json", "ansible.builtin.apt"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    options = json.loads(docs.stdout)["ansible.builtin.apt"]["doc"]["options"]
    apt = the_task(essay_play(site), "ansible.builtin.apt")["ansible.builtin.apt"]
    assert set(apt) <= set(options), set(apt) - set(options)
    assert options["policy_rc_d"]["type"] == "int"
    assert options["allow_downgrade"]["type"] == "bool"


# -- The inventory guard ---------------------------------------------------------

STATIC_INVENTORY = """\
all:
  children:
    app_servers:
      hosts:
        app-01: {}
        app-02: {}
"""

# A CMDB whose API is down: the script exits 1, as a failing dynamic source does.
FAILING_CMDB = """\
#!/bin/sh
echo "CMDB API: 503 Service Unavailable" >&2
exit 1
"""

# A YAML source that breaks on its second line; the INI parser reads the first.
HALF_BROKEN_YAML = "app-07\napp-08: {ansible_host: 10.0.0.8}\n"


def essay_ansible_cfg(site: Site) -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read_string(named_block(site, DOC, "puppets-and-octopi-ansible-cfg"))
    return config


def ansible_settings() -> dict[tuple[str, str], dict[str, Any]]:
    """ansible-core's own table of settings (lib/ansible/config/base.yml),
    keyed by (ini section, ini key)."""
    import ansible

    table = yaml.safe_load(
        (Path(ansible.__file__).parent / "config" / "base.yml").read_text()
    )
    return {
        (ini["section"], ini["key"]): {**setting, "setting": name}
        for name, setting in table.items()
        if isinstance(setting, dict)
        for ini in setting.get("ini") or []
    }


def list_inventory(
    tmp_path: Path, config: str, *sources: tuple[str, str, bool]
) -> tuple[int, set[str], str]:
    """Run ``ansible-inventory --list`` over *sources* (name, text, executable)
    with *config* as the whole ansible.cfg; return the exit status, the hosts
    listed and what it printed on stderr."""
    (tmp_path / "ansible.cfg").write_text(config)
    argv: list[str | Path] = [BIN / "ansible-inventory", "--list"]
    for name, text, executable in sources:
        if text is None:  # a host list such as "h01,h02,", not a file
            argv += ["-i", name]
            continue
        path = tmp_path / name
        path.write_text(text)
        if executable:
            path.chmod(0o755)
        argv += ["-i", str(path)]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_NOCOLOR": "true",
    }
    env = {k: v for k, v in env.items() if not k.startswith("ANSIBLE_INVENTORY")}
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, check=False, cwd=tmp_path
    )
    hosts: set[str] = set()
    if result.returncode == 0:
        listed = json.loads(result.stdout)
        for group, body in listed.items():
            if group != "_meta" and isinstance(body, dict):
                hosts.update(body.get("hosts", []))
    return result.returncode, hosts, result.stderr


STATIC = ("static.yml", STATIC_INVENTORY, False)
CMDB = ("cmdb.sh", FAILING_CMDB, True)


def test_the_ansible_cfg_names_real_inventory_settings(site: Site) -> None:
    config = essay_ansible_cfg(site)
    assert config.sections() == ["defaults", "inventory", "ssh_connection"]
    settings = ansible_settings()
    for key, value in config["inventory"].items():
        assert ("inventory", key) in settings, key
        setting = settings[("inventory", key)]
        if setting.get("type") in ("bool", "boolean"):
            assert value == "true" and setting["default"] is False, key
    assert settings[("inventory", "any_unparsed_is_failed")]["setting"] == (
        "INVENTORY_ANY_UNPARSED_IS_FAILED"
    )
    # the setting the essay warns is not enough, and its oddly named variable
    weaker = settings[("inventory", "unparsed_is_failed")]
    assert weaker["setting"] == "INVENTORY_UNPARSED_IS_FAILED"
    assert weaker["env"] == [{"name": "ANSIBLE_INVENTORY_UNPARSED_FAILED"}]
    assert "every single potential inventory" in " ".join(weaker["description"].split())
    enabled = [p.strip() for p in config["inventory"]["enable_plugins"].split(",")]
    assert set(enabled) <= set(settings[("inventory", "enable_plugins")]["default"])


def test_the_ansible_cfg_sets_the_forks_the_arithmetic_assumes(site: Site) -> None:
    # Review round 11: the 67 minutes assumed 100 forks, which nothing set.
    config = essay_ansible_cfg(site)
    assert dict(config["defaults"]) == {"forks": "100"}
    forks = ansible_settings()[("defaults", "forks")]
    assert (forks["setting"], forks["default"]) == ("DEFAULT_FORKS", 5)

    def hours(forks: int) -> float:
        # linear strategy: each task waits for its whole batch, forks at a time
        batches = [1, 100] + [1_000] * 9 + [899]
        rounds = sum(-(-batch // forks) for batch in batches)
        return 20 * rounds * 2.0 / 3600

    assert hours(5) == pytest.approx(22, abs=0.5)
    assert hours(int(config["defaults"]["forks"])) * 60 == pytest.approx(67, abs=1)


def test_the_ssh_args_keep_ansibles_defaults_and_add_keepalives(site: Site) -> None:
    # Review round 10: the connect timeout does not bound a session that dies
    # mid-task; ssh's keepalives do, after ServerAliveInterval * CountMax.
    from ansible.plugins.connection import ssh

    option = yaml.safe_load(ssh.DOCUMENTATION)["options"]["ssh_args"]
    assert {"section": "ssh_connection", "key": "ssh_args"} in option["ini"]
    value = essay_ansible_cfg(site)["ssh_connection"]["ssh_args"]
    assert value.startswith(option["default"] + " ")  # ControlPersist and all
    words = value.split()
    options = dict(w.split("=", 1) for w in words[words.index("-o") :] if "=" in w)
    interval, count = options["ServerAliveInterval"], options["ServerAliveCountMax"]
    assert int(interval) * int(count) <= 60  # a dead session ends within a minute
    if shutil.which("ssh"):  # ssh itself reads them (without connecting)
        shown = subprocess.run(
            ["ssh", "-G", *words, "host.invalid"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "serveraliveinterval 15" in shown
        assert "serveralivecountmax 3" in shown
        assert "controlpersist 60" in shown


def test_refresh_inventory_finds_a_new_host_but_the_running_play_skips_it(
    tmp_path: Path,
) -> None:
    """Review round 17: the chapter's claim, run. The play adds h02 to its own
    inventory and refreshes it; the host becomes known, but only the next play
    runs on it."""
    hosts = tmp_path / "hosts.ini"
    hosts.write_text("h01\n")
    plays = [
        {
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "ansible.builtin.copy": {
                        "dest": str(hosts),
                        "content": "h01\nh02\n",
                    },
                    "run_once": True,
                },
                {"ansible.builtin.meta": "refresh_inventory"},
                {
                    "ansible.builtin.debug": {
                        "msg": "knows {{ groups['all'] | join(',') }}, "
                        "runs on {{ inventory_hostname }}"
                    }
                },
            ],
        },
        {
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "ansible.builtin.debug": {
                        "msg": "next play on {{ inventory_hostname }}"
                    }
                }
            ],
        },
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    result = subprocess.run(
        [
            BIN / "ansible-playbook",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-i",
            str(hosts),
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ran = re.findall(r'"msg": "knows ([\w,]+), runs on (h\d\d)"', result.stdout)
    assert ran == [("h01,h02", "h01")]  # refreshed, yet h02 runs no task of this play
    assert '"msg": "next play on h02"' in result.stdout


def test_by_default_a_failing_source_silently_drops_its_hosts(tmp_path: Path) -> None:
    rc, hosts, stderr = list_inventory(tmp_path, "", STATIC, CMDB)
    assert rc == 0
    assert hosts == {"app-01", "app-02"}
    assert "Unable to parse" in stderr  # a warning, and nothing more


def test_unparsed_is_failed_alone_does_not_catch_one_failing_source(
    tmp_path: Path,
) -> None:
    rc, hosts, _ = list_inventory(
        tmp_path, "[inventory]\nunparsed_is_failed = true\n", STATIC, CMDB
    )
    assert rc == 0 and hosts == {"app-01", "app-02"}
    rc, _, _ = list_inventory(
        tmp_path, "[inventory]\nunparsed_is_failed = true\n", CMDB
    )
    assert rc != 0  # only when every source fails


def test_the_essays_ansible_cfg_fails_the_run_on_a_failing_source(
    site: Site, tmp_path: Path
) -> None:
    config = named_block(site, DOC, "puppets-and-octopi-ansible-cfg")
    rc, _, stderr = list_inventory(tmp_path, config, STATIC, CMDB)
    assert rc != 0
    assert "Completely failed to parse inventory source" in stderr
    rc, hosts, _ = list_inventory(tmp_path, config, STATIC)
    assert rc == 0 and hosts == {"app-01", "app-02"}  # and passes a healthy one


# A plugin configuration file, read only through the auto plugin, as a cloud
# inventory (aws_ec2.yml, gcp_compute.yml) is.
CONSTRUCTED = """\
plugin: ansible.builtin.constructed
groups:
  web: inventory_hostname.startswith('app')
"""


def test_the_essays_ansible_cfg_keeps_host_lists_and_plugin_files_working(
    site: Site, tmp_path: Path
) -> None:
    config = named_block(site, DOC, "puppets-and-octopi-ansible-cfg")
    host_list = ("h01,h02,", None, False)
    plugin_file = ("constructed.yml", CONSTRUCTED, False)
    rc, hosts, stderr = list_inventory(tmp_path, config, host_list)
    assert rc == 0 and hosts == {"h01", "h02"}, stderr
    rc, hosts, stderr = list_inventory(tmp_path, config, STATIC, plugin_file)
    assert rc == 0 and hosts == {"app-01", "app-02"}, stderr
    # review round 8: the essay's earlier list, script and yaml alone, failed both
    old = "[inventory]\nany_unparsed_is_failed = true\nenable_plugins = script, yaml\n"
    assert list_inventory(tmp_path, old, host_list)[0] != 0
    assert list_inventory(tmp_path, old, STATIC, plugin_file)[0] != 0


def test_the_essays_plugin_list_keeps_ini_hosts_files_working(
    site: Site, tmp_path: Path
) -> None:
    # Review round 12: a copied block without ini failed every INI shop.
    config = named_block(site, DOC, "puppets-and-octopi-ansible-cfg")
    hosts_file = ("hosts", "[app_servers]\napp-09\napp-10\n", False)
    rc, hosts, stderr = list_inventory(tmp_path, config, STATIC, hosts_file)
    assert rc == 0 and {"app-09", "app-10"} <= hosts, stderr
    # ...and the stricter list the prose offers, ini dropped, fails that file
    strict = config.replace("auto, yaml, ini\n", "auto, yaml\n", 1)
    assert strict != config
    assert list_inventory(tmp_path, strict, STATIC, hosts_file)[0] != 0


def test_keeping_ini_lets_a_broken_yaml_file_parse_as_ini(
    site: Site, tmp_path: Path
) -> None:
    # The price the prose names: a .yml file that is no YAML inventory but
    # reads cleanly as INI (a plain list of names) is accepted with ini, and
    # refused by the stricter list without it.
    broken = ("cloud.yml", HALF_BROKEN_YAML, False)
    rc, hosts, _ = list_inventory(tmp_path, "", STATIC, broken)
    assert rc == 0 and "app-07" in hosts  # the INI parser kept the line above the error
    config = named_block(site, DOC, "puppets-and-octopi-ansible-cfg")
    # any_unparsed_is_failed alone already fails the half-read file
    assert list_inventory(tmp_path, config, STATIC, broken)[0] != 0
    names = ("cloud.yml", "app-07\napp-08\n", False)
    rc, hosts, _ = list_inventory(tmp_path, config, STATIC, names)
    assert rc == 0 and {"app-07", "app-08"} <= hosts  # accepted as INI
    strict = config.replace("auto, yaml, ini\n", "auto, yaml\n", 1)
    rc, _, stderr = list_inventory(tmp_path, strict, STATIC, names)
    assert rc != 0, stderr


def test_the_manifests_are_valid_kubernetes_objects(site: Site) -> None:
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    # The client's models are generated from the API's OpenAPI schema and
    # refuse unknown fields and wrong types, as the API server would.
    V1Deployment.model_validate(deployment)
    V2HorizontalPodAutoscaler.model_validate(hpa)
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(ValueError, match="resource"):
        V1Deployment.model_validate(typo)


def test_the_deployment_leaves_replicas_to_the_autoscaler(site: Site) -> None:
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    assert deployment["kind"] == "Deployment"
    assert "replicas" not in deployment["spec"]  # one owner per field
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert hpa["kind"] == "HorizontalPodAutoscaler"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "checkout")
    assert target["name"] == deployment["metadata"]["name"]
    assert 0 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_every_utilisation_metric_has_a_request_to_measure_against(site: Site) -> None:
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] == "Resource" and metric["resource"]["target"]["type"] == (
            "Utilization"
        ):
            resource = metric["resource"]["name"]
            for container in containers:
                assert resource in container.get("resources", {}).get("requests", {})


@pytest.fixture(scope="module")
def lint(site: Site) -> types.ModuleType:
    module = load_block(site, "puppets-and-octopi-hpa-lint", "puppets_and_octopi_lint")
    yield module
    del sys.modules[module.__name__]


def test_the_lint_passes_the_essays_manifests(
    site: Site, lint: types.ModuleType
) -> None:
    assert lint.hpa_problems(yaml_docs(site, "puppets-and-octopi-checkout")) == []


def test_the_lint_rejects_replicas_on_an_autoscaled_deployment(
    site: Site, lint: types.ModuleType
) -> None:
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    deployment["spec"]["replicas"] = 3
    (problem,) = lint.hpa_problems([deployment, hpa])
    assert "spec.replicas" in problem


def test_the_lint_rejects_the_first_versions_missing_cpu_request(
    site: Site, lint: types.ModuleType
) -> None:
    # The essay's first version had no resources block: the HPA could not scale.
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    del deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    (problem,) = lint.hpa_problems([deployment, hpa])
    assert "no cpu request" in problem


def test_the_lint_reports_a_target_it_cannot_find(
    site: Site, lint: types.ModuleType
) -> None:
    _, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    (problem,) = lint.hpa_problems([hpa])
    assert "not found" in problem


def test_the_lint_applies_the_default_cpu_metric_when_none_is_given(
    site: Site, lint: types.ModuleType
) -> None:
    # autoscaling/v2 scales an HPA without metrics on 80 % CPU utilisation, so
    # no metrics and no CPU request is the same mistake as an explicit CPU target.
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    del deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    del hpa["spec"]["metrics"]
    (problem,) = lint.hpa_problems([deployment, hpa])
    assert "no cpu request" in problem
    hpa["spec"]["metrics"] = []  # the lint treats an empty list like a missing one
    assert lint.hpa_problems([deployment, hpa]) == [problem]


def test_the_lint_checks_container_resource_metrics(
    site: Site, lint: types.ModuleType
) -> None:
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    sidecar = {
        "name": "proxy",
        "image": "registry.example.com/proxy@sha256:" + "0" * 64,
    }
    deployment["spec"]["template"]["spec"]["containers"].append(sidecar)
    target = {"type": "Utilization", "averageUtilization": 60}
    hpa["spec"]["metrics"] = [
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": "cpu",
                "container": "proxy",
                "target": target,
            },
        }
    ]
    (problem,) = lint.hpa_problems([deployment, hpa])
    assert "proxy: no cpu request" in problem  # only the named container counts
    hpa["spec"]["metrics"][0]["containerResource"]["container"] = "checkout"
    assert lint.hpa_problems([deployment, hpa]) == []
    hpa["spec"]["metrics"][0]["containerResource"]["container"] = "missing"
    (problem,) = lint.hpa_problems([deployment, hpa])
    assert "no container missing" in problem


def test_the_lint_rejects_an_image_named_by_tag_alone(
    site: Site, lint: types.ModuleType
) -> None:
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert re.fullmatch(r"[^@]+:2\.14\.1@sha256:[0-9a-f]{64}", image)
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image.split("@")[
        0
    ]
    (problem,) = lint.hpa_problems([deployment, hpa])
    assert "checkout/checkout: image" in problem and "not pinned by digest" in problem
    init = {"name": "migrate", "image": "registry.example.com/migrate:1"}
    job = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "initContainers": [init],
                            "containers": [{"name": "run", "image": image}],
                        }
                    }
                }
            }
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "debug"},
        "spec": {"containers": [{"name": "shell", "image": "busybox"}]},
    }
    problems = lint.hpa_problems([job, pod])
    assert len(problems) == 2
    assert any("nightly/migrate" in p for p in problems)
    assert any("debug/shell" in p for p in problems)


def test_the_lint_is_namespace_aware_and_order_independent(
    site: Site, lint: types.ModuleType
) -> None:
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    bad = copy.deepcopy(deployment)
    bad["spec"]["replicas"] = 3
    elsewhere = copy.deepcopy(deployment)
    elsewhere["metadata"]["namespace"] = "staging"
    # A namesake in another namespace neither hides nor stands in for the target.
    for docs in ([elsewhere, bad, hpa], [bad, hpa, elsewhere]):
        (problem,) = lint.hpa_problems(docs)
        assert "spec.replicas" in problem
    # Two copies of one object are reported, whatever their order.
    for docs in ([deployment, bad, hpa], [bad, deployment, hpa]):
        assert any("defined twice" in p for p in lint.hpa_problems(docs))


def test_the_lint_unpacks_lists_and_survives_odd_documents(
    site: Site, lint: types.ModuleType
) -> None:
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    deployment["spec"]["replicas"] = 3
    docs = [
        {"apiVersion": "v1", "kind": "List", "items": [deployment, hpa]},
        {"apiVersion": "v1", "kind": "ConfigMap"},  # no metadata at all
        None,
        "a stray scalar",
    ]
    (problem,) = lint.hpa_problems(docs)
    assert "spec.replicas" in problem


def test_the_lint_fails_the_build_as_a_script(site: Site, tmp_path: Path) -> None:
    script = tmp_path / "hpa_lint.py"
    script.write_text(named_block(site, DOC, "puppets-and-octopi-hpa-lint"))
    good = tmp_path / "good.yaml"
    good.write_text(named_block(site, DOC, "puppets-and-octopi-checkout"))
    deployment, hpa = yaml_docs(site, "puppets-and-octopi-checkout")
    deployment["spec"]["replicas"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([deployment, hpa]))
    ok = subprocess.run([sys.executable, script, good], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    failed = subprocess.run(
        [sys.executable, script, bad], capture_output=True, text=True
    )
    assert failed.returncode == 1
    assert "spec.replicas" in failed.stderr


def test_the_argo_cd_application_guards_the_autoscalers_field(site: Site) -> None:
    (app,) = yaml_docs(site, "puppets-and-octopi-argocd-app")
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    policy = app["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    options = set(policy["syncOptions"])
    # Server-side apply here means --force-conflicts, so ownership alone does
    # not protect replicas: the ignore rule must hold during sync as well.
    assert {"ServerSideApply=true", "RespectIgnoreDifferences=true"} <= options
    assert "CreateNamespace=true" in options  # the destination namespace is new
    # The default project allows any source and destination, and checks nothing.
    assert app["spec"]["project"] != "default"
    (rule,) = app["spec"]["ignoreDifferences"]
    assert (rule["group"], rule["kind"]) == ("apps", "Deployment")
    assert rule["jsonPointers"] == ["/spec/replicas"]
    retry = policy["retry"]
    assert retry["limit"] > 0
    assert retry["backoff"]["factor"] == 2


# The Application CRD's schema for .spec, from argoproj/argo-cd
# manifests/crds/application-crd.yaml (master, 2026-08-22), with descriptions
# removed, the objects the example does not use (helm, kustomize, directory,
# plugin, info, sources, sourceHydrator, managedNamespaceMetadata) reduced to
# their type, and additionalProperties set to false wherever the CRD lists
# properties, as a strict server-side field validation would treat them.
ARGO_APPLICATION_SPEC: dict[str, Any] = {
    "type": "object",
    "required": ["destination", "project"],
    "additionalProperties": False,
    "properties": {
        "destination": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "server": {"type": "string"},
            },
        },
        "ignoreDifferences": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kind"],
                "additionalProperties": False,
                "properties": {
                    "group": {"type": "string"},
                    "jqPathExpressions": {"type": "array", "items": {"type": "string"}},
                    "jsonPointers": {"type": "array", "items": {"type": "string"}},
                    "kind": {"type": "string"},
                    "managedFieldsManagers": {
                        "type": "array",
                        "items": {"type": "string"},
                    },
                    "name": {"type": "string"},
                    "namespace": {"type": "string"},
                },
            },
        },
        "info": {"type": "array"},
        "project": {"type": "string"},
        "revisionHistoryLimit": {"type": "integer"},
        "source": {
            "type": "object",
            "required": ["repoURL"],
            "additionalProperties": False,
            "properties": {
                "chart": {"type": "string"},
                "directory": {"type": "object"},
                "helm": {"type": "object"},
                "kustomize": {"type": "object"},
                "name": {"type": "string"},
                "path": {"type": "string"},
                "plugin": {"type": "object"},
                "ref": {"type": "string"},
                "repoURL": {"type": "string"},
                "tagPrefix": {"type": "string"},
                "targetRevision": {"type": "string"},
            },
        },
        "sourceHydrator": {"type": "object"},
        "sources": {"type": "array"},
        "syncPolicy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "automated": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "allowEmpty": {"type": "boolean"},
                        "enabled": {"type": "boolean"},
                        "prune": {"type": "boolean"},
                        "selfHeal": {"type": "boolean"},
                    },
                },
                "managedNamespaceMetadata": {"type": "object"},
                "retry": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "backoff": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "duration": {"type": "string"},
                                "factor": {"type": "integer"},
                                "maxDuration": {"type": "string"},
                            },
                        },
                        "limit": {"type": "integer"},
                        "refresh": {"type": "boolean"},
                    },
                },
                "syncOptions": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


def test_the_argo_cd_application_matches_the_crd_schema(site: Site) -> None:
    (app,) = yaml_docs(site, "puppets-and-octopi-argocd-app")
    validator = jsonschema.Draft7Validator(ARGO_APPLICATION_SPEC)
    assert list(validator.iter_errors(app["spec"])) == []
    for path, value in (
        (("syncPolicy", "automated", "selfheal"), True),  # a typo of selfHeal
        (("syncPolicy", "retry", "limit"), "5"),  # a string, not an integer
        (("ignoreDifferences", 0, "jsonPointer"), ["/spec/replicas"]),
    ):
        broken = copy.deepcopy(app["spec"])
        node = broken
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        assert list(validator.iter_errors(broken)), path


# The Kustomization CRD's schema for .spec (v1), from fluxcd/kustomize-controller
# config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml at v1.9.4,
# with descriptions removed, only the fields the example uses kept, and
# additionalProperties set to false, as a strict field validation would treat
# them. `ignore` is new in v1.9.0 (review round 17).
FLUX_KUSTOMIZATION_SPEC: dict[str, Any] = {
    "type": "object",
    "required": ["interval", "prune", "sourceRef"],
    "additionalProperties": False,
    "properties": {
        "interval": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"},
        "path": {"type": "string"},
        "prune": {"type": "boolean"},
        "targetNamespace": {"type": "string", "minLength": 1, "maxLength": 63},
        "sourceRef": {
            "type": "object",
            "required": ["kind", "name"],
            "additionalProperties": False,
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {
                    "type": "string",
                    "enum": [
                        "OCIRepository",
                        "GitRepository",
                        "Bucket",
                        "ExternalArtifact",
                    ],
                },
                "name": {"type": "string"},
                "namespace": {"type": "string"},
            },
        },
        "ignore": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["paths"],
                "additionalProperties": False,
                "properties": {
                    "paths": {"type": "array", "items": {"type": "string"}},
                    "target": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            key: {"type": "string"}
                            for key in (
                                "annotationSelector",
                                "group",
                                "kind",
                                "labelSelector",
                                "name",
                                "namespace",
                                "version",
                            )
                        },
                    },
                },
            },
        },
    },
}


def test_the_flux_kustomization_matches_the_crd_schema(site: Site) -> None:
    (ks,) = yaml_docs(site, "puppets-and-octopi-flux-kustomization")
    assert (ks["apiVersion"], ks["kind"]) == (
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
    )
    validator = jsonschema.Draft7Validator(FLUX_KUSTOMIZATION_SPEC)
    assert list(validator.iter_errors(ks["spec"])) == []
    # it ignores the autoscaler's field, on the checkout Deployment only
    (rule,) = ks["spec"]["ignore"]
    assert rule["paths"] == ["/spec/replicas"]
    assert rule["target"] == {"group": "apps", "kind": "Deployment", "name": "checkout"}
    for path, value in (
        (("ignore", 0, "jsonPointers"), ["/spec/replicas"]),  # Argo CD's word
        (("ignore", 0, "target", "apiGroup"), "apps"),
        (("interval",), "10 minutes"),
    ):
        broken = copy.deepcopy(ks["spec"])
        node = broken
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        assert list(validator.iter_errors(broken)), path
    broken = copy.deepcopy(ks["spec"])
    del broken["ignore"][0]["paths"]
    assert list(validator.iter_errors(broken))


def test_the_argo_cd_application_keeps_group_on_every_ignore_entry(site: Site) -> None:
    # argo-cd#28590: an entry without `group` is not honoured at sync time
    (app,) = yaml_docs(site, "puppets-and-octopi-argocd-app")
    assert all("group" in entry for entry in app["spec"]["ignoreDifferences"])


def test_the_status_excerpt_uses_the_deployment_apis_fields(site: Site) -> None:
    # An excerpt (no spec), so its two parts are checked against their models.
    (excerpt,) = yaml_docs(site, "puppets-and-octopi-status")
    assert set(excerpt) == {"metadata", "status"}
    V1ObjectMeta.model_validate(excerpt["metadata"])
    V1DeploymentStatus.model_validate(excerpt["status"])
    typo = copy.deepcopy(excerpt["status"])
    typo["observedGenerations"] = 7
    with pytest.raises(ValueError, match="observedGenerations"):
        V1DeploymentStatus.model_validate(typo)


def test_the_status_excerpt_is_current_and_available(site: Site) -> None:
    (status,) = yaml_docs(site, "puppets-and-octopi-status")
    assert status["status"]["observedGeneration"] == status["metadata"]["generation"]
    conditions = {c["type"]: c for c in status["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    replicas = status["status"]
    assert (
        replicas["updatedReplicas"]
        == replicas["availableReplicas"]
        == replicas["replicas"]
    )


# -- The PromQL example -------------------------------------------------------


def test_the_error_ratio_divides_errors_by_reconciles_per_controller(
    site: Site,
) -> None:
    expr = promql_parser.parse(named_block(site, DOC, "puppets-and-octopi-error-ratio"))
    assert isinstance(expr, promql_parser.BinaryExpr)
    assert str(expr.op) == "/"
    for side, metric in (
        (expr.lhs, "controller_runtime_reconcile_errors_total"),
        (expr.rhs, "controller_runtime_reconcile_total"),
    ):
        assert isinstance(side, promql_parser.AggregateExpr)
        assert str(side.op) == "sum"
        assert "controller" in str(side.modifier)
        assert metric in str(side.expr)


# -- The silence alerts --------------------------------------------------------


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, (
        "promtool is not installed (nox -s tests installs Debian's prometheus)"
    )
    return found


# Six hours of a five-host fleet in one ring, one minute per sample. The store
# serves generation 7 until minute 30 and 8 from minute 31; at minute 231 it
# serves 9 for ten minutes and is then restored from a backup that holds 8. h1
# is healthy, takes 9 and keeps it (it refuses older generations); h2's agent
# stops at minute 40; h3 keeps converging on generation 7 (a stale mirror); h4
# is in the inventory and never reports; h5 is paused at minute 60 and left so,
# which only AgentPausedTooLong may report;
# h8 was paused, then decommissioned at minute 10, and the collector still holds
# its last gauges, as it does for h7, decommissioned unpaused. A second fleet has agents but has lost the inventory and the
# store's series; a third has a decommissioned host that still reports, and h1
# reports two minutes late once. A fourth has three
# rings: the canary is served 8 from minute 10 while the stable ring stays on
# 7, c1 is stuck on 7, c3 was paused on 7 at minute 5, and the edge ring's
# store exports nothing.
SILENCE_REPLAY = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'intent_served_generation{ring="stable"}', values: '7x30 8x199 9x9 8x120'}
      - {series: 'inventory_host_info{host="h1",ring="stable"}', values: '1x361'}
      - {series: 'inventory_host_info{host="h2",ring="stable"}', values: '1x361'}
      - {series: 'inventory_host_info{host="h3",ring="stable"}', values: '1x361'}
      - {series: 'inventory_host_info{host="h4",ring="stable"}', values: '1x361'}
      - {series: 'inventory_host_info{host="h5",ring="stable"}', values: '1x361'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h1"}', values: '0+60x361'}
      - {series: 'agent_converged_generation{host="h1"}', values: '7x35 8x196 9x128'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h2"}', values: '0+60x40 2400x320'}
      - {series: 'agent_converged_generation{host="h2"}', values: '7x35 8x325'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h3"}', values: '0+60x361'}
      - {series: 'agent_converged_generation{host="h3"}', values: '7x361'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h5"}', values: '0+60x60 3600x300'}
      - {series: 'agent_converged_generation{host="h5"}', values: '7x35 8x325'}
      - {series: 'agent_paused_since_timestamp_seconds{host="h5"}', values: '_x59 3600x301'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h8"}', values: '0+60x10 600x350'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h7"}', values: '0+60x10 600x350'}
      - {series: 'agent_paused_since_timestamp_seconds{host="h8"}', values: '0x360'}
    promql_expr_test:
      - expr: ring:converged_on_served_intent:ratio
        eval_time: 20m  # everyone converged on 7, except h4 which never reports
        exp_samples: [{labels: 'ring:converged_on_served_intent:ratio{ring="stable"}', value: 0.8}]
      - expr: ring:converged_on_served_intent:ratio
        eval_time: 33m  # generation 8 is out; nobody has it yet
        exp_samples: [{labels: 'ring:converged_on_served_intent:ratio{ring="stable"}', value: 0}]
      - expr: ring:converged_on_served_intent:ratio
        eval_time: 40m  # h1, h2 and h5 have converged on 8
        exp_samples: [{labels: 'ring:converged_on_served_intent:ratio{ring="stable"}', value: 0.6}]
      - expr: ring:converged_on_served_intent:ratio
        eval_time: 200m  # h2 and h5 still show 8, but their agents went quiet
        exp_samples: [{labels: 'ring:converged_on_served_intent:ratio{ring="stable"}', value: 0.2}]
    alert_rule_test:
      - {alertname: AgentNotConverging, eval_time: 20m, exp_alerts: []}
      - {alertname: AgentBehindServedIntent, eval_time: 20m, exp_alerts: []}
      - {alertname: AgentAheadOfServedIntent, eval_time: 20m, exp_alerts: []}
      - {alertname: HostNeverReports, eval_time: 15m, exp_alerts: []}
      - {alertname: AgentPausedTooLong, eval_time: 20m, exp_alerts: []}
      - {alertname: InventoryMissing, eval_time: 6h, exp_alerts: []}
      - {alertname: ServedIntentMissing, eval_time: 6h, exp_alerts: []}
      - {alertname: Watchdog, eval_time: 20m, exp_alerts: [{exp_labels: {}}]}
      - alertname: AgentNotConverging  # h2 stopped at 40m: 25 minutes of silence
        eval_time: 65m
        exp_alerts: [{exp_labels: {host: h2}}]
      - alertname: AgentNotConverging  # the stopped agent; not the paused one, not h8
        eval_time: 6h
        exp_alerts: [{exp_labels: {host: h2}}]
      - alertname: AgentBehindServedIntent
        eval_time: 6h
        exp_alerts: [{exp_labels: {host: h3, ring: stable}}]
      - alertname: AgentAheadOfServedIntent  # h1 holds 9 after the restore to 8
        eval_time: 6h
        exp_alerts: [{exp_labels: {host: h1, ring: stable}}]
      - alertname: HostNeverReports
        eval_time: 6h
        exp_alerts: [{exp_labels: {host: h4, ring: stable}}]
      - alertname: AgentPausedTooLong
        eval_time: 6h
        exp_alerts: [{exp_labels: {host: h5}}]
  - interval: 1m
    input_series:
      - {series: 'agent_last_converged_timestamp_seconds{host="h1"}', values: '0+60x60'}
      - {series: 'agent_converged_generation{host="h1"}', values: '7x60'}
    alert_rule_test:
      - {alertname: HostNeverReports, eval_time: 30m, exp_alerts: []}  # blind
      - {alertname: AgentBehindServedIntent, eval_time: 30m, exp_alerts: []}  # blind
      - {alertname: InventoryMissing, eval_time: 30m, exp_alerts: [{exp_labels: {}}]}
      - {alertname: Watchdog, eval_time: 30m, exp_alerts: [{exp_labels: {}}]}
  - interval: 1m  # h9 was decommissioned but its agent still reports
    input_series:
      - {series: 'intent_served_generation{ring="stable"}', values: '7x60'}
      - {series: 'inventory_host_info{host="h1",ring="stable"}', values: '1x60'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h1"}', values: '0+60x20 1200x16 2280+60x22'}
      - {series: 'agent_converged_generation{host="h1"}', values: '7x60'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h9"}', values: '0+60x60'}
      - {series: 'agent_converged_generation{host="h9"}', values: '7x60'}
    promql_expr_test:
      - expr: ring:converged_on_served_intent:ratio
        eval_time: 30m  # one of one, not two of one
        exp_samples: [{labels: 'ring:converged_on_served_intent:ratio{ring="stable"}', value: 1}]
    alert_rule_test:
      - {alertname: AgentNotConverging, eval_time: 37m, exp_alerts: []}  # late, not lost
  - interval: 1m  # three rings, each compared with its own store
    input_series:
      - {series: 'intent_served_generation{ring="canary"}', values: '7x10 8x110'}
      - {series: 'intent_served_generation{ring="stable"}', values: '7x120'}
      - {series: 'inventory_host_info{host="c1",ring="canary"}', values: '1x120'}
      - {series: 'inventory_host_info{host="c2",ring="canary"}', values: '1x120'}
      - {series: 'inventory_host_info{host="c3",ring="canary"}', values: '1x120'}
      - {series: 'inventory_host_info{host="s1",ring="stable"}', values: '1x120'}
      - {series: 'inventory_host_info{host="e1",ring="edge"}', values: '1x120'}
      - {series: 'agent_converged_generation{host="c1"}', values: '7x120'}
      - {series: 'agent_converged_generation{host="c2"}', values: '7x12 8x108'}
      - {series: 'agent_converged_generation{host="c3"}', values: '7x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="c3"}', values: '0+60x5 300x115'}
      - {series: 'agent_paused_since_timestamp_seconds{host="c3"}', values: '_x5 300x115'}
      - {series: 'agent_converged_generation{host="s1"}', values: '7x120'}
      - {series: 'agent_converged_generation{host="e1"}', values: '7x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="c1"}', values: '0+60x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="c2"}', values: '0+60x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="s1"}', values: '0+60x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="e1"}', values: '0+60x120'}
    promql_expr_test:
      - expr: ring:converged_on_served_intent:ratio
        eval_time: 60m
        exp_samples:
          - {labels: 'ring:converged_on_served_intent:ratio{ring="canary"}', value: 0.3333333333333333}
          - {labels: 'ring:converged_on_served_intent:ratio{ring="stable"}', value: 1}
          - {labels: 'ring:converged_on_served_intent:ratio{ring="edge"}', value: 0}
    alert_rule_test:
      - alertname: AgentBehindServedIntent  # the stuck canary; not the stable host, not c3
        eval_time: 60m
        exp_alerts: [{exp_labels: {host: c1, ring: canary}}]
      - alertname: AgentPausedTooLong  # c3's pause is only 55 minutes old
        eval_time: 60m
        exp_alerts: []
      - {alertname: AgentAheadOfServedIntent, eval_time: 60m, exp_alerts: []}
      - alertname: ServedIntentMissing
        eval_time: 60m
        exp_alerts: [{exp_labels: {ring: edge}}]
"""


def promtool_on(
    tmp_path: Path, rules: str, *args: str, replay: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS`` in *tmp_path*, with *rules* as rules.yml (and
    *replay* as replay.yml)."""
    (tmp_path / "rules.yml").write_text(rules)
    if replay is not None:
        (tmp_path / "replay.yml").write_text(replay)
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, check=False, cwd=tmp_path
    )


def replay_silence_rules(
    rules: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return promtool_on(
        tmp_path, rules, "test", "rules", "replay.yml", replay=SILENCE_REPLAY
    )


# Review round 11: h1's gauges come from node_exporter's textfile collector, so
# when the host dies at minute 30 its series end (a stale marker) instead of
# freezing as a Pushgateway's would. AgentNotConverging loses its input; the
# host must page through HostNeverReports, 20 minutes later, not after an hour.
DEAD_HOST_REPLAY = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'intent_served_generation{ring="stable"}', values: '7x90'}
      - {series: 'inventory_host_info{host="h1",ring="stable"}', values: '1x90'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h1"}', values: '0+60x30 stale'}
      - {series: 'agent_converged_generation{host="h1"}', values: '7x30 stale'}
    alert_rule_test:
      - {alertname: AgentNotConverging, eval_time: 80m, exp_alerts: []}  # no input
      - {alertname: HostNeverReports, eval_time: 45m, exp_alerts: []}
      - alertname: HostNeverReports
        eval_time: 52m
        exp_alerts: [{exp_labels: {host: h1, ring: stable}}]
"""


def test_a_dead_host_pages_through_host_never_reports_in_20_minutes(
    site: Site, tmp_path: Path
) -> None:
    rules = silence_rules(site)
    result = promtool_on(
        tmp_path, rules, "test", "rules", "replay.yml", replay=DEAD_HOST_REPLAY
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # with the old hour-long `for`, the dead host had not paged at minute 52
    slow = rules.replace("for: 20m", "for: 1h")
    assert slow != rules
    result = promtool_on(
        tmp_path, slow, "test", "rules", "replay.yml", replay=DEAD_HOST_REPLAY
    )
    assert result.returncode != 0


def test_the_silence_rules_pass_promtool_check(site: Site, tmp_path: Path) -> None:
    rules = silence_rules(site)
    result = promtool_on(tmp_path, rules, "check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "14 rules found" in result.stdout


def test_each_silence_alert_catches_its_host_and_only_that_one(
    site: Site, tmp_path: Path
) -> None:
    result = replay_silence_rules(silence_rules(site), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("3 * 300", "3 * 3000"),  # a threshold too lax to see h2 stop
        # the inventory diff turned inside out
        (
            "unless on(host) agent_last_converged_timestamp_seconds",
            "and on(host) agent_last_converged_timestamp_seconds",
        ),
        ("< on(ring) group_left()", "> on(ring) group_left()"),  # behind, not ahead
        (
            ") or on(ring) 0 *",
            ") and on(ring) 0 *",
        ),  # the ratio would vanish, not read 0
        # a dead agent's last gauge would count as converged
        ("and on(host) (time() - agent_last_converged_timestamp_seconds < 900)", ""),
        ("> on(ring) group_left()", "== on(ring) group_left()"),  # ahead is not current
        ("absent(inventory_host_info)", "inventory_host_info == 0"),
        (
            "unless on(ring) intent_served_generation",
            "and on(ring) intent_served_generation",
        ),
        ("expr: vector(1)", "expr: vector(1) == 0"),  # a watchdog that never fires
        # review round 9: a decommissioned host's last gauges paged for ever, and
        # one late report paged at once
        ("> 3 * 300)\n            and on(host) inventory_host_info", "> 3 * 300)"),
        ("> 4 * 3600)\n            and on(host) inventory_host_info", "> 4 * 3600)"),
        (
            "agent_paused_since_timestamp_seconds\n        for: 5m\n      - alert: HostNever",
            "agent_paused_since_timestamp_seconds\n      - alert: HostNever",
        ),
        # review round 10: a sanctioned pause paged within about 20 minutes
        (
            "\n            unless on(host) agent_paused_since_timestamp_seconds\n"
            "        for: 5m",
            "\n        for: 5m",
        ),
        (
            "\n            unless on(host) agent_paused_since_timestamp_seconds\n"
            "        for: 30m",
            "\n        for: 30m",
        ),
        # review round 6: the ring-unaware rules of round 5, which compared every
        # host with the newest generation of any ring
        (
            "< on(ring) group_left() ring:intent_served_generation:max",
            "< on() group_left() max(intent_served_generation)",
        ),
    ],
)
def test_the_replay_would_catch_a_broken_rule(
    site: Site, tmp_path: Path, old: str, new: str
) -> None:
    rules = silence_rules(site)
    assert old in rules
    result = replay_silence_rules(rules.replace(old, new, 1), tmp_path)
    assert result.returncode != 0, result.stdout


# -- The inventory drift alerts ---------------------------------------------------

# Discovery finds h1 to h4 (h3's exporter is down, but the host exists); the
# inventory lists h1, h2 and h4, h4 twice (in two rings, from two sources),
# and h9, which discovery does not find (HostNeverReports' business, not these).
# A second fleet checks what runs (review round 10): the stable ring is pinned
# to 2.14.0 and moves to 2.14.1 at minute 100, and h1 follows at minute 110;
# h2 missed every rollout and runs 2.13.9; c1 runs its canary pin; x1 runs
# 2.13.9 but is not in the inventory (HostNotInInventory's business).
# Review round 17: the pins carry package versions, as the agent's intent
# does (2.14.1-1, and an epoch on the canary's), while the processes report
# the upstream version; e1's ring is pinned in the upstream form, which the
# rule's cut must leave alone.
INVENTORY_REPLAY = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'up{job="node",instance="10.0.0.1:9100",host="h1"}', values: '1x120'}
      - {series: 'up{job="node",instance="10.0.0.2:9100",host="h2"}', values: '1x120'}
      - {series: 'up{job="node",instance="10.0.0.3:9100",host="h3"}', values: '0x120'}
      - {series: 'up{job="node",instance="10.0.0.4:9100",host="h4"}', values: '1x120'}
      - {series: 'up{job="blackbox",instance="https://h3/",host="h3"}', values: '1x120'}
      - {series: 'inventory_host_info{host="h1",ring="stable",source="cmdb"}', values: '1x120'}
      - {series: 'inventory_host_info{host="h2",ring="stable",source="cmdb"}', values: '1x120'}
      - {series: 'inventory_host_info{host="h4",ring="stable",source="cmdb"}', values: '1x120'}
      - {series: 'inventory_host_info{host="h4",ring="canary",source="static"}', values: '1x120'}
      - {series: 'inventory_host_info{host="h9",ring="stable",source="static"}', values: '1x120'}
    alert_rule_test:
      - {alertname: HostNotInInventory, eval_time: 20m, exp_alerts: []}  # not for 30m yet
      - alertname: HostNotInInventory
        eval_time: 60m
        exp_alerts: [{exp_labels: {host: h3}}]
      - {alertname: InventoryDuplicateHost, eval_time: 5m, exp_alerts: []}
      - alertname: InventoryDuplicateHost
        eval_time: 60m
        exp_alerts: [{exp_labels: {host: h4}}]
      - {alertname: RunningVersionNotPinned, eval_time: 60m, exp_alerts: []}
  - interval: 1m
    input_series:
      - {series: 'inventory_host_info{host="h1",ring="stable"}', values: '1x240'}
      - {series: 'inventory_host_info{host="h2",ring="stable"}', values: '1x240'}
      - {series: 'inventory_host_info{host="c1",ring="canary"}', values: '1x240'}
      - {series: 'inventory_host_info{host="e1",ring="edge"}', values: '1x240'}
      - {series: 'ring_pinned_version_info{ring="stable",version="2.14.0-1"}', values: '1x99'}
      - {series: 'ring_pinned_version_info{ring="stable",version="2.14.1-1"}', values: '_x100 1x140'}
      - {series: 'ring_pinned_version_info{ring="canary",version="1:2.14.1-1"}', values: '1x240'}
      - {series: 'ring_pinned_version_info{ring="edge",version="2.14.1"}', values: '1x240'}
      - {series: 'app_build_info{host="h1",version="2.14.0"}', values: '1x109'}
      - {series: 'app_build_info{host="h1",version="2.14.1"}', values: '_x110 1x130'}
      - {series: 'app_build_info{host="h2",version="2.13.9"}', values: '1x240'}
      - {series: 'app_build_info{host="c1",version="2.14.1"}', values: '1x240'}
      - {series: 'app_build_info{host="e1",version="2.14.1"}', values: '1x240'}
      - {series: 'app_build_info{host="x1",version="2.13.9"}', values: '1x240'}
    alert_rule_test:
      - {alertname: RunningVersionNotPinned, eval_time: 60m, exp_alerts: []}  # pending
      - alertname: RunningVersionNotPinned  # h2 only: h1 lagged its pin ten minutes
        eval_time: 3h
        exp_alerts: [{exp_labels: {host: h2, ring: stable, version: 2.13.9}}]
"""


def replay_inventory_rules(
    rules: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return promtool_on(
        tmp_path, rules, "test", "rules", "replay.yml", replay=INVENTORY_REPLAY
    )


def test_the_inventory_rules_pass_promtool_check(site: Site, tmp_path: Path) -> None:
    rules = named_block(site, DOC, "puppets-and-octopi-inventory-rules")
    result = promtool_on(tmp_path, rules, "check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 rules found" in result.stdout


def test_each_inventory_alert_names_its_host_and_only_that_one(
    site: Site, tmp_path: Path
) -> None:
    result = replay_inventory_rules(
        named_block(site, DOC, "puppets-and-octopi-inventory-rules"), tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("unless on(host)", "and on(host)"),  # the diff turned inside out
        # a host whose exporter is down still exists
        ('(up{job="node"})', '(up{job="node"} == 1)'),
        ("> 1", ">= 1"),  # every listed host a duplicate
        ("count by (host)", "count by (host, ring)"),  # blind to a host in two rings
        # review round 10: every process would count as pinned, or none would
        ("unless on(ring, version)", "and on(ring, version)"),
        ("unless on(ring, version)", "unless on(ring)"),
        ("for: 2h", "for: 1m"),  # h2 would page at once, before a rollout could end
    ],
)
def test_the_inventory_replay_would_catch_a_broken_rule(
    site: Site, tmp_path: Path, old: str, new: str
) -> None:
    rules = named_block(site, DOC, "puppets-and-octopi-inventory-rules")
    assert old in rules
    result = replay_inventory_rules(rules.replace(old, new, 1), tmp_path)
    assert result.returncode != 0, result.stdout


def pin_cut(rules: str) -> tuple[int, int]:
    """Where the rule's label_replace over the pins starts and ends."""
    start = rules.index("label_replace(ring_pinned_version_info")
    return start, rules.index('")', start) + 2


def test_without_the_cut_a_package_version_pin_pages_every_host(
    site: Site, tmp_path: Path
) -> None:
    rules = named_block(site, DOC, "puppets-and-octopi-inventory-rules")
    start, end = pin_cut(rules)
    raw = rules[:start] + "ring_pinned_version_info" + rules[end:]
    result = replay_inventory_rules(raw, tmp_path)
    assert result.returncode != 0
    # c1 runs its pin, yet pages at 3h: 2.14.1 is not 1:2.14.1-1
    assert 'host="c1"' in result.stdout + result.stderr


def test_the_rules_cut_of_the_pin_is_the_agents_upstream(
    site: Site, agent: types.ModuleType
) -> None:
    rules = named_block(site, DOC, "puppets-and-octopi-inventory-rules")
    start, end = pin_cut(rules)
    args = re.findall(r'"((?:[^"\\]|\\.)*)"', rules[start:end])
    assert args[:3] == ["version", "$1", "version"]
    # Prometheus anchors the regex at both ends, as fullmatch does
    cut = re.compile(args[3])
    for version in (
        "2.14.1",
        "2.14.1-1",
        "1:2.14.1-1",
        "1:2.14.1",
        "2.14.1+dfsg-1",
        "1.0-beta-3",
        "10:3.2-0ubuntu1",
    ):
        match = cut.fullmatch(version)
        assert match is not None, version
        assert match.expand(args[1].replace("$", "\\")) == agent.upstream(version)


def test_a_duplicate_inventory_host_breaks_the_ring_join_for_the_whole_fleet(
    site: Site, tmp_path: Path
) -> None:
    """What the essay says InventoryDuplicateHost protects: the silence rules
    copy the ring onto each host with a many-to-one join, which Prometheus
    refuses outright once one host has two inventory series."""
    (tmp_path / "rules.yml").write_text(silence_rules(site))
    (tmp_path / "replay.yml").write_text(
        """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'intent_served_generation{ring="stable"}', values: '7x30'}
      - {series: 'intent_served_generation{ring="canary"}', values: '7x30'}
      - {series: 'inventory_host_info{host="h1",ring="stable"}', values: '1x30'}
      - {series: 'inventory_host_info{host="h2",ring="stable"}', values: '1x30'}
      - {series: 'inventory_host_info{host="h2",ring="canary"}', values: '1x30'}
      - {series: 'agent_converged_generation{host="h1"}', values: '7x30'}
      - {series: 'agent_converged_generation{host="h2"}', values: '7x30'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h1"}', values: '0+60x30'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h2"}', values: '0+60x30'}
    promql_expr_test:
      - expr: host:agent_converged_generation:ring
        eval_time: 10m
        exp_samples:
          - {labels: 'host:agent_converged_generation:ring{host="h1",ring="stable"}', value: 7}
"""
    )
    result = subprocess.run(
        [promtool(), "test", "rules", "replay.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode != 0, result.stdout
    assert "many-to-many matching not allowed" in result.stdout + result.stderr
    assert 'match group {host="h2"}' in result.stdout + result.stderr


# -- The ring gate -------------------------------------------------------------

# Two canary hosts and two stable ones. The canary ring is served generation 8
# from minute 11; c1 converges at minute 13, c2 at minute 15. Every host
# serves 100 requests a minute. Each variant breaks one thing, and only the
# healthy run may open the gate, with the canary's generation as its value.
RING_REPLAY = """
rule_files: [fleet.yml, rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'intent_served_generation{ring="canary",instance="a"}', values: 'CANARY_SERVED'}
      - {series: 'intent_served_generation{ring="canary",instance="b"}', values: 'CANARY_MIRROR'}
      - {series: 'intent_served_generation{ring="stable",instance="a"}', values: '7x120'}
      - {series: 'intent_served_generation{ring="stable",instance="b"}', values: '7x120'}
      - {series: 'inventory_host_info{host="c1",ring="canary"}', values: '1x120'}
      - {series: 'inventory_host_info{host="c2",ring="canary"}', values: '1x120'}
      - {series: 'inventory_host_info{host="s1",ring="stable"}', values: '1x120'}
      - {series: 'inventory_host_info{host="s2",ring="stable"}', values: '1x120'}
      - {series: 'agent_converged_generation{host="c1"}', values: 'C1_GEN'}
      - {series: 'agent_converged_generation{host="c2"}', values: 'C2_GEN'}
      - {series: 'agent_converged_generation{host="s1"}', values: '7x120'}
      - {series: 'agent_converged_generation{host="s2"}', values: '7x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="c1"}', values: '0+60x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="c2"}', values: 'C2_SEEN'}
      - {series: 'agent_last_converged_timestamp_seconds{host="s1"}', values: '0+60x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="s2"}', values: '0+60x120'}
      - {series: 'http_requests_total{host="c1",code="200"}', values: '0+CANARY_OKx120'}
      - {series: 'http_requests_total{host="c1",code="500"}', values: '0+CANARY_ERRx120'}
      - {series: 'http_requests_total{host="c2",code="200"}', values: '0+CANARY_OKx120'}
      - {series: 'http_requests_total{host="c2",code="500"}', values: '0+CANARY_ERRx120'}
      - {series: 'http_requests_total{host="s1",code="200"}', values: '0+STABLE_OKx120'}
      - {series: 'http_requests_total{host="s1",code="500"}', values: 'STABLE_ERRS'}
      - {series: 'http_requests_total{host="s2",code="200"}', values: '0+STABLE_OKx120'}
    promql_expr_test:
      - expr: ring:converged_on_served_intent:ratio
        eval_time: 14m  # c1 has 8, c2 not yet; the stable ring is current on 7
        exp_samples:
          - {labels: 'ring:converged_on_served_intent:ratio{ring="canary"}', value: 0.5}
          - {labels: 'ring:converged_on_served_intent:ratio{ring="stable"}', value: 1}
      - expr: ring:canary_gate:generation
        eval_time: 30m  # converged, but the change at minute 11 is inside the soak
        exp_samples: []
      - expr: ring:canary_gate:generation
        eval_time: 60m
        exp_samples: GATE_AT_60
"""

RING_HEALTHY = {
    "CANARY_SERVED": "7x10 8x110",
    "CANARY_MIRROR": "7x10 8x110",  # a second store replica, in step
    "C1_GEN": "7x12 8x108",
    "C2_GEN": "7x14 8x106",
    "C2_SEEN": "0+60x120",
    "CANARY_OK": "100",
    "CANARY_ERR": "0",
    "STABLE_OK": "100",
    "STABLE_ERRS": "_x120",  # the stable ring has no 5xx series at all
}
RING_VARIANTS = {
    "healthy": {},
    "bad": {"CANARY_OK": "90", "CANARY_ERR": "10"},  # 10 % errors
    # 0.5 % errors: under the 1 % ceiling, but far worse than the stable ring
    "worse": {"CANARY_OK": "199", "CANARY_ERR": "1"},
    # the stable ring is itself failing (20 of s1's 100 requests a minute, 11 %
    # of the ring), so the canary's 13 % passes the relative test alone
    "incident": {
        "STABLE_OK": "80",
        "STABLE_ERRS": "0+20x120",
        "CANARY_OK": "87",
        "CANARY_ERR": "13",
    },
    "quiet": {"CANARY_OK": "1"},  # 60 requests in 30 minutes prove nothing
    "silent": {"C2_SEEN": "0+60x20 1200x100"},  # c2's agent stops at minute 20
    "slow": {"C2_GEN": "7x44 8x76"},  # c2 converges only at minute 45
    # review round 8: one store replica still serves 7, so some hosts may too
    "lagging": {"CANARY_MIRROR": "7x120"},
    # review round 10: the mirror catches up at minute 58; its hosts (none here,
    # under 2 % of a large canary) would have had 8 for two minutes
    "caught_up": {"CANARY_MIRROR": "7x57 8x63"},
    # generation 9 reaches the canary at minute 56, and both hosts take it in
    # the same minute: the gate must not offer an unsoaked 9 for promotion
    "next": {
        "CANARY_SERVED": "7x10 8x44 9x65",
        "CANARY_MIRROR": "7x10 8x44 9x65",
        "C1_GEN": "7x12 8x42 9x65",
        "C2_GEN": "7x14 8x40 9x65",
    },
}
GATE_OPEN = "[{labels: 'ring:canary_gate:generation{ring=\"canary\"}', value: 8}]"


def ring_rules(site: Site) -> tuple[str, str]:
    return (
        silence_rules(site),
        named_block(site, DOC, "puppets-and-octopi-ring-gate"),
    )


def replay_ring_gate(
    fleet: str, rules: str, tmp_path: Path, variant: str = "healthy", *, opens: bool
) -> subprocess.CompletedProcess[str]:
    replay = RING_REPLAY.replace("GATE_AT_60", GATE_OPEN if opens else "[]")
    for key, value in {**RING_HEALTHY, **RING_VARIANTS[variant]}.items():
        replay = replay.replace(key, value)
    (tmp_path / "fleet.yml").write_text(fleet)
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "replay.yml").write_text(replay)
    return subprocess.run(
        [promtool(), "test", "rules", "replay.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


def test_the_gate_and_its_inputs_are_evaluated_once_a_minute(site: Site) -> None:
    # count_over_time(...[30m]) >= 29 holds a series with no history (a new
    # ring, a wiped TSDB) for 30 minutes only at a 1m interval; at 30s, 15.
    for name in (
        "puppets-and-octopi-silence-rules",
        "puppets-and-octopi-silence-rules-more",
        "puppets-and-octopi-ring-gate",
    ):
        (group,) = yaml.safe_load(named_block(site, DOC, name))["groups"]
        assert group["interval"] == "1m", name


def test_the_ring_gate_passes_promtool_check(site: Site, tmp_path: Path) -> None:
    rules = named_block(site, DOC, "puppets-and-octopi-ring-gate")
    result = promtool_on(tmp_path, rules, "check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 rules found" in result.stdout


def test_the_ring_gate_opens_after_a_healthy_soak_with_its_generation(
    site: Site, tmp_path: Path
) -> None:
    result = replay_ring_gate(*ring_rules(site), tmp_path, opens=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", sorted(set(RING_VARIANTS) - {"healthy"}))
def test_the_ring_gate_stays_shut(site: Site, tmp_path: Path, variant: str) -> None:
    shut = replay_ring_gate(*ring_rules(site), tmp_path, variant, opens=False)
    assert shut.returncode == 0, shut.stdout + shut.stderr
    opened = replay_ring_gate(*ring_rules(site), tmp_path, variant, opens=True)
    assert opened.returncode != 0, opened.stdout  # the replay can tell


def renamed_for_a_later_ring(text: str) -> str:
    """The gate and its replay with the canary renamed "tenth" and the stable
    ring "rest": the third ring of canary, a tenth of the fleet, the rest."""
    for old, new in (
        ("canary_gate", "tenth_gate"),
        ('"canary"', '"tenth"'),
        ('"stable"', '"rest"'),
    ):
        text = text.replace(old, new)
    return text


def replay_renamed_gate(
    site: Site, tmp_path: Path, variant: str, *, opens: bool
) -> subprocess.CompletedProcess[str]:
    fleet, gate = ring_rules(site)
    renamed = renamed_for_a_later_ring(gate)
    assert 'ring="canary"' not in renamed and 'ring="tenth"' in renamed
    replay = renamed_for_a_later_ring(
        RING_REPLAY.replace("GATE_AT_60", GATE_OPEN if opens else "[]")
    )
    for key, value in {**RING_HEALTHY, **RING_VARIANTS[variant]}.items():
        replay = replay.replace(key, value)
    assert 'ring="canary"' not in replay and "tenth_gate" in replay
    (tmp_path / "fleet.yml").write_text(fleet)
    (tmp_path / "rules.yml").write_text(renamed)
    (tmp_path / "replay.yml").write_text(replay)
    return subprocess.run(
        [promtool(), "test", "rules", "replay.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


@pytest.mark.parametrize("variant", ["healthy", "bad", "worse", "slow", "incident"])
def test_renamed_the_gate_opens_a_later_ring_on_the_one_before(
    site: Site, tmp_path: Path, variant: str
) -> None:
    # The chapter: "Renamed, the same rules open each later ring on the one
    # before." The tenth of the fleet opens only on a healthy soak, measured
    # against the rest, which still runs the old pin.
    opens = variant == "healthy"
    right = replay_renamed_gate(site, tmp_path, variant, opens=opens)
    assert right.returncode == 0, right.stdout + right.stderr
    wrong = replay_renamed_gate(site, tmp_path, variant, opens=not opens)
    assert wrong.returncode != 0, wrong.stdout  # the replay can tell


# A one-host canary served generation 8 from minute 11 converges on it at
# minute 12, between two samples: there is no half-converged minute, only the
# one at which no canary host has converged yet.
ONE_HOST_REPLAY = """
rule_files: [fleet.yml, rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'intent_served_generation{ring="canary"}', values: '7x10 8x110'}
      - {series: 'intent_served_generation{ring="stable"}', values: '7x120'}
      - {series: 'inventory_host_info{host="c1",ring="canary"}', values: '1x120'}
      - {series: 'inventory_host_info{host="s1",ring="stable"}', values: '1x120'}
      - {series: 'inventory_host_info{host="s2",ring="stable"}', values: '1x120'}
      - {series: 'agent_converged_generation{host="c1"}', values: '7x11 8x109'}
      - {series: 'agent_converged_generation{host="s1"}', values: '7x120'}
      - {series: 'agent_converged_generation{host="s2"}', values: '7x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="c1"}', values: '0+60x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="s1"}', values: '0+60x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="s2"}', values: '0+60x120'}
      - {series: 'http_requests_total{host="c1",code="200"}', values: '0+100x120'}
      - {series: 'http_requests_total{host="s1",code="200"}', values: '0+100x120'}
      - {series: 'http_requests_total{host="s2",code="200"}', values: '0+100x120'}
    promql_expr_test:
      - expr: ring:converged_on_served_intent:ratio{ring="canary"}
        eval_time: 11m  # served 8, still on 7: 0, not an absent series
        exp_samples:
          - {labels: 'ring:converged_on_served_intent:ratio{ring="canary"}', value: 0}
      - expr: ring:canary_gate:generation
        eval_time: 14m  # converged two minutes ago: no soak yet
        exp_samples: []
      - expr: ring:canary_gate:generation
        eval_time: 40m  # the 0 at minute 11 is still inside the 30 minutes
        exp_samples: []
      - expr: ring:canary_gate:generation
        eval_time: 45m
        exp_samples:
          - {labels: 'ring:canary_gate:generation{ring="canary"}', value: 8}
"""

NUMERATOR_FALLBACK = ") or on(ring) 0 * count by (ring) (inventory_host_info))"


def replay_one_host_canary(
    site: Site, fleet: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "fleet.yml").write_text(fleet)
    (tmp_path / "rules.yml").write_text(
        named_block(site, DOC, "puppets-and-octopi-ring-gate")
    )
    (tmp_path / "replay.yml").write_text(ONE_HOST_REPLAY)
    return subprocess.run(
        [promtool(), "test", "rules", "replay.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


def test_a_one_host_canary_still_soaks(site: Site, tmp_path: Path) -> None:
    result = replay_one_host_canary(site, ring_rules(site)[0], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_the_fallback_a_one_host_canary_reads_nothing_not_0(
    site: Site, tmp_path: Path
) -> None:
    fleet = ring_rules(site)[0]
    assert NUMERATOR_FALLBACK in fleet
    result = replay_one_host_canary(
        site, fleet.replace(NUMERATOR_FALLBACK, "))", 1), tmp_path
    )
    assert result.returncode != 0, result.stdout


CANARY_ERRORS = 'and on(ring) ring:http_errors:ratio_rate30m{ring="canary"}'


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("[30m:1m]) >= 0.98", "[1m:1m]) >= 0.98"),  # no soak of convergence
        ("* 1.25 + 0.001", "* 1.25 + 0.2"),  # a relative gate far too lax
        ("or 0 * ring:http_requests", "and 0 * ring:http_requests"),  # no 5xx: shut
        # review round 6: the gate had no absolute ceiling, no minimum traffic,
        # and opened on whatever generation the canary had just been handed
        (f"{CANARY_ERRORS} < 0.01\n", ""),
        ("* 1800 >= 1000", "* 1800 >= 0"),
        # without either soak of the served generation, "next" opens on 9
        (
            'and on(ring) changes(ring:intent_served_generation:max{ring="canary"}'
            "[30m]) == 0\n          and on(ring) changes(ring:intent_served_generation:"
            'min{ring="canary"}[30m]) == 0\n          ',
            "",
        ),
        # review round 8: a lagging replica opened it
        (
            "== ring:intent_served_generation:min",
            "<= ring:intent_served_generation:min + 1",
        ),
        # review round 10: so did one that caught up a minute before the check
        (
            '\n          and on(ring) changes(ring:intent_served_generation:min{ring="canary"}'
            "[30m]) == 0",
            "",
        ),
    ],
)
def test_the_ring_replay_would_catch_a_broken_gate(
    site: Site, tmp_path: Path, old: str, new: str
) -> None:
    fleet, rules = ring_rules(site)
    assert old in rules
    mutated = rules.replace(old, new, 1)
    outcomes = [
        replay_ring_gate(
            fleet, mutated, tmp_path, variant, opens=variant == "healthy"
        ).returncode
        for variant in RING_VARIANTS
    ]
    assert any(outcomes), "no variant noticed the change"


# -- A highly available intent store ------------------------------------------

# Review round 8: each ring's store has two replicas, each exporting the
# generation it serves. The stable ring's replica b lags from minute 20 (it
# still serves 7 when a serves 8), and h2 fetches from it; the canary's two
# replicas agree. The rules must neither error nor hide the lag.
REPLICATED_REPLAY = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'intent_served_generation{ring="stable",instance="a"}', values: '7x20 8x100'}
      - {series: 'intent_served_generation{ring="stable",instance="b"}', values: '7x120'}
      - {series: 'intent_served_generation{ring="canary",instance="a"}', values: '8x120'}
      - {series: 'intent_served_generation{ring="canary",instance="b"}', values: '8x120'}
      - {series: 'inventory_host_info{host="h1",ring="stable"}', values: '1x120'}
      - {series: 'inventory_host_info{host="h2",ring="stable"}', values: '1x120'}
      - {series: 'inventory_host_info{host="c1",ring="canary"}', values: '1x120'}
      - {series: 'agent_converged_generation{host="h1"}', values: '7x22 8x98'}
      - {series: 'agent_converged_generation{host="h2"}', values: '7x120'}
      - {series: 'agent_converged_generation{host="c1"}', values: '8x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h1"}', values: '0+60x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="h2"}', values: '0+60x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="c1"}', values: '0+60x120'}
    promql_expr_test:
      - expr: ring:converged_on_served_intent:ratio
        eval_time: 60m
        exp_samples:
          - {labels: 'ring:converged_on_served_intent:ratio{ring="stable"}', value: 0.5}
          - {labels: 'ring:converged_on_served_intent:ratio{ring="canary"}', value: 1}
    alert_rule_test:
      - {alertname: IntentStoreReplicasDisagree, eval_time: 30m, exp_alerts: []}
      - alertname: IntentStoreReplicasDisagree
        eval_time: 60m
        exp_alerts: [{exp_labels: {ring: stable}}]
      - alertname: AgentBehindServedIntent
        eval_time: 60m
        exp_alerts: [{exp_labels: {host: h2, ring: stable}}]
      - {alertname: AgentAheadOfServedIntent, eval_time: 60m, exp_alerts: []}
      - {alertname: ServedIntentMissing, eval_time: 60m, exp_alerts: []}
"""


def replay_replicated_store(
    rules: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "replay.yml").write_text(REPLICATED_REPLAY)
    return subprocess.run(
        [promtool(), "test", "rules", "replay.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


def test_a_replicated_store_is_joined_and_its_lag_pages(
    site: Site, tmp_path: Path
) -> None:
    result = replay_replicated_store(silence_rules(site), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_joining_the_replicas_directly_would_fail_every_generation_check(
    site: Site, tmp_path: Path
) -> None:
    rules = silence_rules(site)
    direct = "group_left() ring:intent_served_generation:max"
    assert rules.count(direct) == 3
    result = replay_replicated_store(
        rules.replace(direct, "group_left() intent_served_generation"), tmp_path
    )
    assert result.returncode != 0, result.stdout
    assert "many-to-many matching not allowed" in result.stdout + result.stderr


def test_a_failing_rule_evaluation_pages(site: Site, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(silence_rules(site))
    (tmp_path / "replay.yml").write_text(
        """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'prometheus_rule_evaluation_failures_total{rule_group="fleet"}', values: '0x10 1+1x50'}
    alert_rule_test:
      - {alertname: PrometheusRuleFailures, eval_time: 10m, exp_alerts: []}
      - alertname: PrometheusRuleFailures
        eval_time: 40m
        exp_alerts: [{exp_labels: {rule_group: fleet}}]
"""
    )
    result = subprocess.run(
        [promtool(), "test", "rules", "replay.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Review round 8: a canary ring whose series begin at minute 40 (a new ring,
# or a Prometheus that lost its data) is healthy at once. With 21 minutes of
# history the gate must stay shut; with 30 it may open.
COLD_REPLAY = """
rule_files: [fleet.yml, rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'intent_served_generation{ring="canary"}', values: '_x40 8x80'}
      - {series: 'intent_served_generation{ring="stable"}', values: '7x120'}
      - {series: 'inventory_host_info{host="c1",ring="canary"}', values: '_x40 1x80'}
      - {series: 'inventory_host_info{host="s1",ring="stable"}', values: '1x120'}
      - {series: 'agent_converged_generation{host="c1"}', values: '_x40 8x80'}
      - {series: 'agent_converged_generation{host="s1"}', values: '7x120'}
      - {series: 'agent_last_converged_timestamp_seconds{host="c1"}', values: '_x40 2400+60x80'}
      - {series: 'agent_last_converged_timestamp_seconds{host="s1"}', values: '0+60x120'}
      - {series: 'http_requests_total{host="c1",code="200"}', values: '_x40 0+100x80'}
      - {series: 'http_requests_total{host="s1",code="200"}', values: '0+100x120'}
    promql_expr_test:
      - expr: ring:canary_gate:generation
        eval_time: 60m
        exp_samples: []
      - expr: ring:canary_gate:generation
        eval_time: 75m
        exp_samples:
          - {labels: 'ring:canary_gate:generation{ring="canary"}', value: 8}
"""


def replay_cold_canary(
    fleet: str, rules: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "fleet.yml").write_text(fleet)
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "replay.yml").write_text(COLD_REPLAY)
    return subprocess.run(
        [promtool(), "test", "rules", "replay.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


def test_the_gate_needs_thirty_minutes_of_history(site: Site, tmp_path: Path) -> None:
    fleet, rules = ring_rules(site)
    result = replay_cold_canary(fleet, rules, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[30m]) >= 29" in rules
    short = replay_cold_canary(
        fleet, rules.replace("[30m]) >= 29", "[30m]) >= 0"), tmp_path
    )
    assert short.returncode != 0, short.stdout  # without the count it opens at 60m

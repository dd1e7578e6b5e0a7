"""The examples of "Puppets and Octopi", checked as the essay shows them.

The Python agent runs against a fake host whose package database and running
process can disagree, with the clock and the random source replaced, so the
tests can check what it observes, what it does, and how long it waits. The
YAML examples are parsed and checked for the properties the prose claims, and
the PromQL expression is parsed with promql-parser.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import promql_parser
import pytest
import yaml

from conftest import Site, named_block

DOC = "essays/infrastructure/puppets-and-octopi"


# -- The agent ---------------------------------------------------------------


@pytest.fixture(scope="module")
def agent(site: Site) -> types.ModuleType:
    """The agent code block, executed as a module."""
    module = types.ModuleType("puppets_and_octopi_agent")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        exec(named_block(site, DOC, "puppets-and-octopi-agent"), module.__dict__)
        yield module
    finally:
        del sys.modules[module.__name__]


class FakeHost:
    """A host with a package database and a process that can disagree.

    Installing changes the files on disk only; the process keeps the version
    it was started with until something starts or restarts it."""

    def __init__(
        self,
        name: str = "host-3412",
        installed: str | None = "2.14.0",
        running: str | None = "2.14.0",
        fail_install: bool = False,
        crash_on_start: bool = False,
    ) -> None:
        self.name = name
        self.installed = installed
        self.running = running
        self.fail_install = fail_install
        self.crash_on_start = crash_on_start
        self.calls: list[tuple[str, ...]] = []
        self.reports: list[dict[str, Any]] = []

    def installed_version(self, unit: str) -> str | None:
        return self.installed

    def running_version(self, unit: str) -> str | None:
        return self.running

    def install(self, unit: str, version: str) -> None:
        self.calls.append(("install", version))
        if self.fail_install:
            raise OSError("No space left on device")
        self.installed = version

    def _launch(self) -> None:
        self.running = None if self.crash_on_start else self.installed

    def start(self, unit: str) -> None:
        self.calls.append(("start",))
        self._launch()

    def restart(self, unit: str) -> None:
        self.calls.append(("restart",))
        self._launch()

    def stop(self, unit: str) -> None:
        self.calls.append(("stop",))
        self.running = None

    def report(self, **fields: Any) -> None:
        self.reports.append(fields)


def drive(
    agent: types.ModuleType,
    host: FakeHost,
    fetch: Callable[[], Any],
    passes: int,
    rand: Callable[[], float] = lambda: 1.0,
    **options: Any,
) -> list[float]:
    """Run the agent for *passes* passes; return every delay it asked for."""
    sleeps: list[float] = []
    agent.run(host, fetch, sleep=sleeps.append, rand=rand, passes=passes, **options)
    return sleeps


def test_an_upgrade_restarts_the_old_binary(agent: types.ModuleType) -> None:
    host = FakeHost(installed="2.14.0", running="2.14.0")
    drive(agent, host, lambda: agent.Desired("2.14.1"), passes=1)
    assert host.calls == [("install", "2.14.1"), ("restart",)]
    assert (host.installed, host.running) == ("2.14.1", "2.14.1")
    assert host.reports == [{"converged": True, "problem": None}]


def test_a_package_swapped_underneath_is_not_mistaken_for_convergence(
    agent: types.ModuleType,
) -> None:
    # An unattended upgrade put 2.14.1 on disk; the process is still 2.14.0.
    host = FakeHost(installed="2.14.1", running="2.14.0")
    want = agent.Desired("2.14.1")
    seen = agent.observe(host, "app")
    assert seen.installed == want.version  # an installed-version check says "done"
    assert agent.plan(want, seen) == ["restart"]  # the agent knows it is not
    drive(agent, host, lambda: want, passes=1)
    assert host.calls == [("restart",)]
    assert host.running == "2.14.1"
    assert host.reports[-1]["converged"] is True


def test_a_stopped_service_is_installed_then_started(agent: types.ModuleType) -> None:
    host = FakeHost(installed=None, running=None)
    drive(agent, host, lambda: agent.Desired("2.14.1"), passes=1)
    assert host.calls == [("install", "2.14.1"), ("start",)]
    assert host.running == "2.14.1"


def test_a_service_that_should_not_run_is_stopped(agent: types.ModuleType) -> None:
    host = FakeHost(installed="2.14.1", running="2.14.1")
    drive(agent, host, lambda: agent.Desired("2.14.1", running=False), passes=1)
    assert host.calls == [("stop",)]
    assert host.running is None
    assert host.reports[-1]["converged"] is True


def test_a_converged_host_is_left_alone(agent: types.ModuleType) -> None:
    host = FakeHost(installed="2.14.1", running="2.14.1")
    sleeps = drive(agent, host, lambda: agent.Desired("2.14.1"), passes=3)
    assert host.calls == []
    assert [r["converged"] for r in host.reports] == [True, True, True]
    assert sleeps[1:] == [300.0, 300.0, 300.0]


def test_it_reports_what_it_observes_after_acting(agent: types.ModuleType) -> None:
    # The new binary crashes on start: acting is not the same as converging.
    host = FakeHost(installed="2.14.0", running="2.14.0", crash_on_start=True)
    sleeps = drive(agent, host, lambda: agent.Desired("2.14.1"), passes=2)
    assert [r["converged"] for r in host.reports] == [False, False]
    assert "start" in host.reports[0]["problem"]
    assert sleeps[1:] == [10.0, 20.0]  # it backs off instead of retrying hot


def test_a_failed_apply_is_reported_and_backed_off(agent: types.ModuleType) -> None:
    host = FakeHost(fail_install=True)
    sleeps = drive(agent, host, lambda: agent.Desired("2.14.1"), passes=3)
    assert all(not r["converged"] for r in host.reports)
    assert "apply failed" in host.reports[0]["problem"]
    assert sleeps[1:] == [10.0, 20.0, 40.0]


def test_backoff_doubles_up_to_the_cap(agent: types.ModuleType) -> None:
    def unreachable() -> Any:
        raise ConnectionError("policy server down")

    host = FakeHost()
    sleeps = drive(agent, host, unreachable, passes=9)
    assert sleeps[1:] == [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0, 600.0]
    assert host.reports[0]["problem"].startswith("fetch failed")
    assert host.calls == []  # no intent has ever been seen: nothing to enforce


def test_backoff_is_jittered(agent: types.ModuleType) -> None:
    def unreachable() -> Any:
        raise ConnectionError("policy server down")

    sleeps = drive(agent, FakeHost(), unreachable, passes=4, rand=lambda: 0.25)
    assert sleeps[1:] == [2.5, 5.0, 10.0, 20.0]


def test_success_resets_the_delay_to_the_interval(agent: types.ModuleType) -> None:
    answers: list[Any] = [ConnectionError("down"), ConnectionError("down")]

    def flaky() -> Any:
        if answers:
            raise answers.pop()
        return agent.Desired("2.14.1")

    host = FakeHost()
    sleeps = drive(agent, host, flaky, passes=4)
    assert sleeps[1:] == [10.0, 20.0, 300.0, 300.0]
    assert host.running == "2.14.1"


def test_the_last_known_good_intent_is_enforced_while_the_server_is_down(
    agent: types.ModuleType,
) -> None:
    host = FakeHost(installed="2.14.1", running="2.14.1")
    fetched: list[int] = []

    def once_then_down() -> Any:
        if fetched:
            host.running = None  # meanwhile someone stops the service by hand
            raise ConnectionError("policy server down")
        fetched.append(1)
        return agent.Desired("2.14.1")

    drive(agent, host, once_then_down, passes=2)
    assert host.calls == [("start",)]
    assert host.running == "2.14.1"
    # Converged locally, but it says it could not refresh its intent.
    assert host.reports[1]["converged"] is False
    assert host.reports[1]["problem"].startswith("fetch failed")


def test_splay_is_stable_per_host_and_spreads_a_fleet(agent: types.ModuleType) -> None:
    host = FakeHost(name="host-3412", installed="2.14.1", running="2.14.1")
    first = drive(agent, host, lambda: agent.Desired("2.14.1"), passes=1)[0]
    again = drive(agent, host, lambda: agent.Desired("2.14.1"), passes=1)[0]
    assert first == again == agent.splay_offset("host-3412", 240.0)
    offsets = [agent.splay_offset(f"host-{i}", 240.0) for i in range(10_000)]
    assert all(0.0 <= o < 240.0 for o in offsets)
    buckets = [0] * 8  # eight 30-second slots should each hold about 1,250 hosts
    for offset in offsets:
        buckets[int(offset // 30)] += 1
    assert min(buckets) > 1_000
    assert agent.splay_offset("any", 0) == 0.0


# -- The YAML examples --------------------------------------------------------


def yaml_docs(site: Site, name: str) -> list[Any]:
    return list(yaml.safe_load_all(named_block(site, DOC, name)))


def test_the_playbook_rolls_in_batches_and_restarts_through_its_handler(
    site: Site,
) -> None:
    (play,) = yaml_docs(site, "puppets-and-octopi-rolling-playbook")[0]
    assert play["serial"] == "10%"
    assert play["max_fail_percentage"] == 5
    handlers = {h["name"] for h in play["handlers"]}
    notified = {t["notify"] for t in play["tasks"] if "notify" in t}
    assert notified == handlers == {"Restart app"}
    restart = play["handlers"][0]["ansible.builtin.service"]
    assert restart == {"name": "app", "state": "restarted"}
    apt = play["tasks"][0]["ansible.builtin.apt"]
    assert apt["name"] == "app=2.14.1"


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


def test_the_argo_cd_application_self_heals_prunes_and_backs_off(site: Site) -> None:
    (app,) = yaml_docs(site, "puppets-and-octopi-argocd-app")
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    policy = app["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert "ServerSideApply=true" in policy["syncOptions"]
    retry = policy["retry"]
    assert retry["limit"] > 0
    assert retry["backoff"]["factor"] == 2


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

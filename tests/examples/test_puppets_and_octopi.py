"""The examples of "Puppets and Octopi", checked as the essay shows them.

The Python agent runs against a fake host whose package database and running
process can disagree, with the clock, the random source and the state file
replaced, so the tests can check what it observes, what it does, what it keeps
across restarts and how long it waits. The Kubernetes manifests are validated
against the API's own models (the ``kubernetes`` client, generated from the
OpenAPI schema, refuses unknown fields and wrong types), the playbook is
checked by ``ansible-playbook --syntax-check`` and against the documented
options of the ``apt`` module, the HPA lint runs on the essay's manifests and on
broken copies of them, and the PromQL expression is parsed with promql-parser.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from kubernetes.client import V1Deployment, V2HorizontalPodAutoscaler

from conftest import Site, named_block

DOC = "essays/infrastructure/puppets-and-octopi"
BIN = Path(sys.executable).parent


# -- The agent ---------------------------------------------------------------


def load_block(site: Site, name: str, module_name: str) -> types.ModuleType:
    module = types.ModuleType(module_name)
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(named_block(site, DOC, name), module.__dict__)
    return module


@pytest.fixture(scope="module")
def agent(site: Site) -> types.ModuleType:
    """The agent code block, executed as a module."""
    module = load_block(site, "puppets-and-octopi-agent", "puppets_and_octopi_agent")
    yield module
    del sys.modules[module.__name__]


class FakeClock:
    """A monotonic clock that moves only when the agent sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

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
    ) -> None:
        self.name = name
        self.installed = installed
        self.running = running
        self.fail_install = fail_install
        self.crash_on_start = crash_on_start
        self.calls: list[tuple[str, ...]] = []
        self.reports: list[dict[str, Any]] = []
        self.report_times: list[float] = []
        self.clock: FakeClock | None = None

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
    """Run the agent for *passes* enforcement passes on a fake clock."""
    clock = FakeClock()
    host.clock = clock
    agent.run(
        host,
        fetch,
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
    clock = drive(agent, host, intent, passes=2, state=state)
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
    drive(agent, again, down, passes=1, state=state)
    assert again.calls == [("start",)]
    assert again.running == "2.14.1"
    assert again.reports[0]["intent_generation"] == 7
    assert again.reports[0]["converged"] is True
    assert again.reports[0]["problem"].startswith("fetch failed")


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
    assert apt["allow_downgrade"] is True  # the same play can roll back
    assert apt["update_cache"] is True
    assert apt["policy_rc_d"] == 101  # the package may not restart the service


def test_the_playbook_passes_ansibles_syntax_check(site: Site, tmp_path: Path) -> None:
    playbook = tmp_path / "rollout.yml"
    playbook.write_text(named_block(site, DOC, "puppets-and-octopi-rolling-playbook"))
    env = {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
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
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_apt_task_uses_only_documented_options(site: Site, tmp_path: Path) -> None:
    (play,) = yaml_docs(site, "puppets-and-octopi-rolling-playbook")[0]
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "home")}
    docs = subprocess.run(
        [BIN / "ansible-doc", "--json", "ansible.builtin.apt"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    options = json.loads(docs.stdout)["ansible.builtin.apt"]["doc"]["options"]
    apt = play["tasks"][0]["ansible.builtin.apt"]
    assert set(apt) <= set(options), set(apt) - set(options)
    assert options["policy_rc_d"]["type"] == "int"
    assert options["allow_downgrade"]["type"] == "bool"


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
    (rule,) = app["spec"]["ignoreDifferences"]
    assert (rule["group"], rule["kind"]) == ("apps", "Deployment")
    assert rule["jsonPointers"] == ["/spec/replicas"]
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

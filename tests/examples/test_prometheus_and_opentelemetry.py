"""The examples of "Prometheus and OpenTelemetry: How They Fit Together" do
what the prose says.

Checked with real tools:

* The staleness example is a ``promtool test rules`` file; ``promtool`` runs it
  against the real PromQL engine (scraped: the sum stays 40; pushed: it reads
  80 until the lookback expires; ``last_over_time(...[3m])`` ends it after three
  minutes), and a test shows the run fails when an expectation is wrong.
* The alerts pass ``promtool check rules``; a ``promtool test rules`` replay,
  built from the rules themselves, shows every alert firing with its labels and
  annotations on a broken pipeline and none on a healthy one, with the
  Collector's counters named as its readers' ``without_type_suffix`` serves
  them (served with ``_total``, the missing-metrics guard pages), and the
  series-growth alert stays quiet when head truncation is followed by regrowth
  (the round-3 expression, an hour-ago comparison, fired there).
  Round 5: one rejected OTLP request or one queue drop among thousands opens a
  ticket and does not page (round 4's any-loss page would have).
* The web configuration passes ``promtool check web-config`` with a certificate
  made by ``openssl`` (and fails with a plaintext password or no key); the
  replicas' peer scrape and the delta tier's exporters authenticate over TLS
  with users it defines.
* ``promtool`` shows the ``or`` fallback of the OTLP quantile query reading the
  temporary name until the bare name appears.
* ``promtool`` confirms the prose about real ``increase()``: no result from one
  sample, and 18 (not 12) from a zero at 0 s and 12 at 40 s.
* The Prometheus configuration, alerting block included, passes ``promtool
  check config --syntax-only`` once the keys that the installed promtool (2.42)
  predates are removed; those are checked against the option names of the 3.14
  configuration reference instead.
* The OpenTelemetry Python SDK exports once more on shutdown and never sets the
  ``NoRecordedValue`` flag; it reads the pod spec's variables into the per-pod
  ``service.instance.id``; and two Views emit the classic and the native
  histogram side by side.
* The pull example runs with the SDK's Prometheus exporter and is scraped over
  real HTTP: the scrape contains the essay's two lines, one series per scope, a
  ``target_info`` without ``job``, no sample timestamps, and passes ``promtool
  check metrics``. Pushed instead, the same two streams share name, attributes
  and millisecond, so without scope labels they are one series.
* The bucket-index code is compared with the SDK's exponential mapping.
* The PromQL blocks are parsed with ``promql-parser`` and their structure is
  asserted.

Review round 14: a fourth NetworkPolicy admits only the Collectors, the peer
replica and Grafana to Prometheus's port 9090, where the OTLP route lives (a
pusher holding the Collectors' password is refused); one dead Collector
tickets and half a tier pages (a promtool replay over a tier of four); the
missing-metrics guards ticket; PrometheusPeerDown's annotation carries the
queue countdown the configuration sets and the action the prose decides.

Review round 17: the queue countdown pages on its own at a quarter full (a
promtool replay, which fails with the old half-full, ten-minute rule); the
front tier's queues are sized in bytes inside its memory budget; the peer
alert no longer claims every push fails; a replica outage mutes the
converter's out-of-order ticket (emulated inhibition, amtool check-config).

Checked by emulation: Prometheus relabelling (the Collector job keeps only
port 8888 of a Collector pod, the services job an SDK's 9464 and a legacy
/metrics port; alert relabelling makes both HA replicas send one
alert) and the kubelet's ``$(VAR)`` expansion.

Not checked against a running Prometheus 3.x: whole-request rollback, the
400/500 split, the ten-minute future limit and duplicate handling are read
from the 3.14 source, as the essay says.

Checked structurally (no Collector binary is installable here): core
components' nested options against option names copied from the core
``config.schema.yaml`` files (spot-checked against the August 2026 files),
contrib components' top-level options, and the reference design's properties:
one path into the long-term store, every OTLP batch to both HA replicas with
its own persistent queue, no stateful component in the load-balanced tier,
every Collector scrapeable on 0.0.0.0:8888, and native histograms on remote
write. The diagram draws the same design.

Review round 6: an idle Collector does not page (round 5's sent == 0 did);
export failures page on a ratio and ticket on any loss; batch jobs leave the
heartbeat and get a last-success ticket; a fast clock is caught by the node
mixin's offset rule; the converter, the load balancer's view of the delta tier,
Prometheus's own metric names and OTLP attribute collisions are watched; the
services job gives a scraped pod the same ``job``, ``instance`` and promoted
labels as the same pod pushing; and the NetworkPolicies admit only pushers to
the front tier and only the front tier to the delta tier (checked by emulating
NetworkPolicy selection, not by a cluster).

Review round 7: the attribute-collision ticket reads only the
``label_name_collision`` category (3.14's other categories, such as
``histogram_zero_count_non_zero_sum``, leave it quiet); a recording rule
carries a batch job's last success forward, so the ticket is still open
after nine and thirty days without success, where the round-7 rule (an
eight-day ``max_over_time``) resolved itself; and the delta tier's exporters
pin batching off, under the exporter helper's nested batch options.

Review round 9: the front tier enforces the cumulative policy (a filter drops
delta points from services outside an allowlist, and a ticket counts them);
the Alertmanager inhibition passes ``amtool check-config`` where amtool is
installed; the services job's metric relabelling makes a scraped
``target_info`` equal the pushed one; the name-translation table agrees with
the Python exporter except for ``_ratio``, as the prose says; and the alert
table lists every rule once, in the column of its severity.

Review round 10 (round 9's findings): the front tier's routing connector
sends only delta metrics to the load balancer and the delta tier, and
cumulative streams straight to both replicas over TLS with a credential,
from in-memory queues (no storage in the front tier); an idle delta route
does not page (CollectorNotSending reads only the exporters to Prometheus,
and would page with the load balancer included); the inhibition mutes only
the exporter to the replica that is down, in either tier, and not the one
to the healthy replica (checked by emulating Alertmanager's matchers); and
the Prometheus metric-name guard covers both remote-write names the rules
read.

Review round 11 (round 10's findings): CollectorNotSending sums every
exporter, the load balancer included, and discounts what the delta policy
drops, so a front tier that receives only deltas, only unlisted deltas, or
only cumulative streams does not page, while a stalled one does (the round-10
rule paged on the delta-only front tier); CollectorNotSendingToReplica pages
when one of the twin exporters stalls while the other sends; the inhibition
mutes every exporter alert on the dead replica's exporter, and neither
CollectorRefusing nor the whole-Collector stall; every replica exporter's
queue holds its 20 minutes of retries at the ten requests a second the prose
names, and the front tier pins wait_for_result off; a service silent for a
day keeps its ServiceStoppedPushing ticket (round 10's rule resolved after an
hour); and the scrape-side NetworkPolicy admits only the monitoring namespace
to a service's named metrics port.

Review round 12 (round 11's findings): Prometheus's plain-text 400 reasons
are not protobuf, so the exporter's log keeps only the code, and the
rejection alerts point at the sending Collector's log; no pipeline runs a
batch or queuebatch processor ahead of the fan-out, and the prose calls
wait_for_result: false the default; a job listed as a retired pusher never
tickets, while an unlisted silent one does, without the admin API, which the
flags leave off; PushedClockLagging tickets for a host still pushing 5 to 55
minutes late (round 11's 30-minute band missed 40) and not beyond the hour
or for a retired pod (without the advancing condition, it would); and
CollectorNotSending fires for a stall under 95 % unlisted deltas, which
round 11's ratio missed.

Review round 15: whole-request failure on a translation error is a 3.7+
fact (3.5.0's handler logs it as a warning and writes the rest), and the prose
and the version table say so; the scraped staleness marker is stamped at the
first missed scrape though written about two intervals later; the
zero-sample flag's change to the scrape protocols is moot because the
configuration pins the order scrape_native_histograms sets; a partition
between the replicas fires PrometheusPeerDown for both at once (a promtool
replay), which is why the exporter removal stays a person's decision; every
appendix block that no current binary loads says on its first lines how it
was checked; and the worked example is labelled a composite.

Review round 12: a pushed canary per path pages when its heartbeat stops
reaching a replica, also once its series has left the lookback (the age test
alone would resolve there); the always-firing Watchdog is routed to an
outside dead-man's switch, never to the on-call receiver; the delta canary is
on the front tier's allowlist; and the Prometheus probes authenticate over
HTTPS as a user web.yml defines.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import io
import math
import pickle
import random
import re
import shlex
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import opentelemetry.exporter.otlp.proto.common
import opentelemetry.sdk
import prometheus_client
import promql_parser
import pytest
import yaml
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping import (
    exponent_mapping,
    logarithm_mapping,
)
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

from conftest import Site, named_block

DOC = "essays/observability/prometheus-and-opentelemetry"
SLUG = "prometheus-and-opentelemetry"


def block(site: Site, what: str) -> str:
    return named_block(site, DOC, f"{SLUG}-{what}")


def doctree(site: Site) -> Any:
    return pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes())


def prose(site: Site) -> str:
    return " ".join(doctree(site).astext().split())


def run(code: str) -> tuple[dict[str, Any], list[str]]:
    """Execute *code*; return its namespace and the lines it printed."""
    namespace: dict[str, Any] = {"__name__": "essay_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<essay>", "exec"), namespace)
    return namespace, out.getvalue().splitlines()


def inline_comments(code: str) -> list[str]:
    """What each ``print(...)  # value ...`` line says it prints (first word)."""
    found = []
    for line in code.splitlines():
        if line.startswith("print(") and "  # " in line:
            found.append(line.split("  # ", 1)[1].split()[0].rstrip(":,"))
    return found


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, (
        "promtool is not installed (nox -s tests installs Debian's prometheus)"
    )
    return found


def promtool_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def seconds(duration: str) -> int:
    """A Go/Prometheus duration such as ``20m`` or ``1m30s``, in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)([smhd])", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


# -- Staleness: the promtool unit test in the essay ----------------------------


def test_staleness_example_passes_in_promtool(site: Site, tmp_path: Path) -> None:
    (tmp_path / "staleness.yml").write_text(block(site, "staleness-test"))
    result = promtool_run("test", "rules", "staleness.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_staleness_example_states_what_the_prose_says(site: Site) -> None:
    tests = yaml.safe_load(block(site, "staleness-test"))["tests"]
    scraped, pushed = tests
    # Only the scraped path has a staleness marker; pod b starts at 10m on both.
    assert "stale" in scraped["input_series"][0]["values"]
    assert "stale" not in yaml.safe_dump(pushed["input_series"])
    assert scraped["input_series"][1]["values"].startswith("_x40 ")  # 40 x 15s
    assert pushed["input_series"][1]["values"].startswith("_x10 ")  # 10 x 1m
    assert pushed["interval"] == "1m"  # OTEL_METRIC_EXPORT_INTERVAL's default
    expected = {
        (case["expr"], case["eval_time"]): case["exp_samples"][0]["value"]
        for case in pushed["promql_expr_test"]
    }
    # "the sum reads 80 ... until the lookback runs out": 80 just before 15m,
    # 40 just after; avg is not doubled; last_over_time(...[3m]) keeps pod a
    # for three minutes after its last sample (10m), not five.
    assert expected[("sum(queue_depth)", "14m50s")] == 80
    assert expected[("sum(queue_depth)", "15m10s")] == 40
    assert expected[("avg(queue_depth)", "12m")] == 40
    assert expected[("sum(last_over_time(queue_depth[3m]))", "12m30s")] == 80
    assert expected[("sum(last_over_time(queue_depth[3m]))", "13m30s")] == 40
    assert all(
        case["exp_samples"][0]["value"] == 40 for case in scraped["promql_expr_test"]
    )
    assert "last_over_time(queue_depth[3m])" in prose(site)


def test_bounded_lookback_keeps_the_rule_the_prose_gives(site: Site) -> None:
    """Prose: "keep the range above two export intervals". Review round 2: the
    old [2m] range was exactly two 60 s intervals, which broke that rule."""
    pushed = yaml.safe_load(block(site, "staleness-test"))["tests"][1]
    interval = seconds(pushed["interval"])
    ranges = {
        m.group(1)
        for case in pushed["promql_expr_test"]
        if (m := re.search(r"last_over_time\(queue_depth\[(\w+)\]\)", case["expr"]))
    }
    assert ranges, "the test shows the bounded query"
    for window in ranges:
        assert seconds(window) > 2 * interval, window
        assert f"last_over_time(queue_depth[{window}])" in prose(site)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("value: 80}]", "value: 40}]"),  # "pushed gauges do not double count"
        ("eval_time: 14m50s\n        exp_samples: [{labels: '{}', value: 40}]",
         "eval_time: 14m50s\n        exp_samples: [{labels: '{}', value: 80}]"),
    ],
)  # fmt: skip
def test_promtool_would_catch_a_wrong_staleness_claim(
    site: Site, tmp_path: Path, old: str, new: str
) -> None:
    text = block(site, "staleness-test")
    wrong = text.replace(old, new, 1)
    assert wrong != text
    (tmp_path / "staleness.yml").write_text(wrong)
    result = promtool_run("test", "rules", "staleness.yml", cwd=tmp_path)
    assert result.returncode != 0, result.stdout


# -- The first increment ---------------------------------------------------------


def test_first_increment_model_prints_what_its_comments_say(site: Site) -> None:
    code = block(site, "first-increment")
    _, printed = run(code)
    assert printed == inline_comments(code) == ["None", "12"]


def test_increase_model_counts_rises_and_resets(site: Site) -> None:
    ns, _ = run(block(site, "first-increment"))
    increase = ns["increase"]
    assert increase([(0, 5), (15, 9), (30, 3), (45, 4)]) == 4 + 3 + 1
    assert increase([(0, 0), (15, 0)]) == 0


REAL_INCREASE = """
tests:
  - interval: 40s
    input_series:
      - series: 'jobs_total{job="batch"}'
        values: '0 12'    # the zero sample at the start timestamp, then 12 at 40 s
      - series: 'once_total{job="batch"}'
        values: '_ 12'    # one push on exit, no start timestamp
    promql_expr_test:
      - expr: increase(jobs_total[5m])
        eval_time: 2m
        exp_samples: [{labels: '{job="batch"}', value: 18}]
      - expr: increase(once_total[5m])
        eval_time: 2m
        exp_samples: []
"""


def test_real_increase_extrapolates_as_the_prose_says(
    site: Site, tmp_path: Path
) -> None:
    """Prose: without a start sample no result; with one, a later window says 18."""
    (tmp_path / "increase.yml").write_text(REAL_INCREASE)
    result = promtool_run("test", "rules", "increase.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The model in the essay prints 12 for the same samples: the difference is
    # PromQL's extrapolation by half an interval, (40 + 20) / 40 * 12.
    ns, _ = run(block(site, "first-increment"))
    assert ns["increase"]([(0, 0), (40, 12)]) * (40 + 20) / 40 == 18
    assert "reports 18" in prose(site)


# -- What the Python SDK does ----------------------------------------------------


class _Recorder(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[Any] = []

    def export(self, metrics_data: Any, timeout_millis: float = 0, **_: Any) -> Any:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 0) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 0, **_: Any) -> None:
        return None


def test_python_sdk_flushes_a_last_export_on_shutdown() -> None:
    """Prose: the SDK's last sample carries the exit time."""
    recorder = _Recorder()
    reader = PeriodicExportingMetricReader(recorder, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("essay").create_up_down_counter("queue_depth").add(40)
    assert recorder.batches == []
    provider.shutdown()
    assert len(recorder.batches) == 1


def test_python_sdk_never_sets_no_recorded_value() -> None:
    """Prose: "the Python SDK, for one, has no code that sets it"."""
    roots = [
        Path(next(iter(opentelemetry.sdk.__path__))),
        Path(next(iter(opentelemetry.exporter.otlp.proto.common.__path__))),
    ]
    sources = [p for root in roots for p in root.rglob("*.py")]
    assert len(sources) > 50
    for path in sources:
        text = path.read_text(encoding="utf-8")
        upper = text.upper()
        assert "NO_RECORDED_VALUE" not in upper, path
        assert "NORECORDEDVALUE" not in upper, path


# -- Pulling OpenTelemetry metrics, and what pushing them does to scopes ----------


@pytest.fixture(scope="module")
def pull_scrape(site: Site) -> tuple[dict[str, Any], str]:
    """Run the pull example once (the SDK reader registers in prometheus_client's
    global registry) and scrape it over HTTP. The example asks for 0.0.0.0:9464;
    the test records that and serves the same registry on a free loopback port."""
    asked: dict[str, Any] = {}
    real = prometheus_client.start_http_server

    def start_http_server(port: int, addr: str = "0.0.0.0", **_: Any) -> Any:
        asked.update(port=port, addr=addr)
        return real(0, addr="127.0.0.1")

    code = block(site, "pull")
    assert "from prometheus_client import start_http_server" in code
    original = prometheus_client.start_http_server
    prometheus_client.start_http_server = start_http_server
    try:
        run(code)
    finally:
        prometheus_client.start_http_server = original
    server, _thread = real(0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
    return asked, body


def test_pull_example_serves_what_the_essay_shows(
    site: Site, pull_scrape: tuple[dict[str, Any], str]
) -> None:
    asked, body = pull_scrape
    # The spec's default port; not localhost, the default host, which no other
    # pod could scrape.
    assert asked == {"port": 9464, "addr": "0.0.0.0"}
    lines = body.splitlines()
    shown = [line for line in block(site, "pull-scrape").splitlines() if line]
    assert len(shown) == 2
    for line in shown:
        assert line in lines, line
    # One series per scope: the same name and attributes, told apart only by
    # otel_scope_name.
    counts = [line for line in lines if line.startswith(
        "http_server_request_duration_seconds_count{")]  # fmt: skip
    assert len(counts) == 2
    assert {re.search(r'otel_scope_name="([^"]*)"', c).group(1) for c in counts} == {
        "opentelemetry.instrumentation.flask",
        "checkout",
    }
    assert len({re.sub(r'otel_scope_name="[^"]*",?', "", c) for c in counts}) == 1
    # The semantic conventions' boundaries, not the SDK's millisecond defaults.
    assert 'le="0.005"' in body and 'le="7500.0"' not in body


def test_pull_scrape_is_what_prometheus_expects(
    pull_scrape: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    """target_info carries the resource but no job or instance (the scrape adds
    them); no sample carries a timestamp, so the scraper's clock is used; and the
    exposition passes promtool's linter."""
    _, body = pull_scrape
    info = next(line for line in body.splitlines() if line.startswith("target_info{"))
    assert 'service_name="checkout"' in info and 'service_namespace="shop"' in info
    assert "telemetry_sdk_language=" in info  # every SDK adds telemetry.sdk.*
    assert "job=" not in info and 'instance="' not in info
    for line in body.splitlines():
        if line and not line.startswith("#"):
            # name{labels} value, and no third field: no explicit timestamp.
            rest = line.rsplit("}", 1)[1] if "}" in line else line.split(None, 1)[1]
            assert len(rest.split()) == 1, line
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=body, capture_output=True,
        text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    broken = body.replace("# HELP http_server_request_duration_seconds", "# HELP x", 1)
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=broken, capture_output=True,
        text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0  # the linter can fail


def test_pushed_scopes_collide_without_scope_labels(site: Site) -> None:
    """Prose: the Python SDK stamps a whole collection with one time, so two
    scopes' points with one name and attributes reach Prometheus in one request
    at the same millisecond; without otel_scope_* labels they are one series."""
    code = block(site, "pull")
    body = code.split("DURATION = ", 1)[1]
    reader = InMemoryMetricReader()
    namespace = {
        "provider": MeterProvider(metric_readers=[reader]),
        "__name__": "essay_example",
    }
    exec(compile("DURATION = " + body, "<essay>", "exec"), namespace)
    points = [
        (scope.scope.name, metric.name, dict(point.attributes), point.time_unix_nano)
        for scope in reader.get_metrics_data().resource_metrics[0].scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    ]
    assert len(points) == 2
    (scope_a, name_a, attrs_a, t_a), (scope_b, name_b, attrs_b, t_b) = points
    assert scope_a != scope_b
    assert (name_a, attrs_a, t_a // 10**6) == (name_b, attrs_b, t_b // 10**6)

    def labels(scope: str, attributes: dict[str, Any], promote: bool) -> frozenset:
        found = {
            re.sub(r"[^a-zA-Z0-9_]", "_", k): str(v) for k, v in attributes.items()
        }
        if promote:
            found["otel_scope_name"] = scope
        return frozenset(found.items())

    assert labels(scope_a, attrs_a, False) == labels(scope_b, attrs_b, False)
    assert labels(scope_a, attrs_a, True) != labels(scope_b, attrs_b, True)


# -- Histogram bucket indexes ------------------------------------------------------


def test_bucket_index_example_prints_what_its_comments_say(site: Site) -> None:
    code = block(site, "bucket-index")
    _, printed = run(code)
    assert printed == inline_comments(code)


def sdk_index(value: float, scale: int) -> int:
    mapping = (
        logarithm_mapping.LogarithmMapping(scale)
        if scale > 0
        else exponent_mapping.ExponentMapping(scale)
    )
    return mapping.map_to_index(value)


def test_otel_index_matches_the_python_sdk(site: Site) -> None:
    ns, _ = run(block(site, "bucket-index"))
    otel_index = ns["otel_index"]
    rng = random.Random(20261201)
    for scale in (-4, -1, 0, 1, 3, 8):
        for _ in range(2000):
            value = math.exp(rng.uniform(-20, 20))
            expected = sdk_index(value, scale)
            got = otel_index(value, scale)
            # Floating-point logs may disagree with the SDK's exact mapping
            # right at a bucket boundary; away from it they must agree.
            lower, upper = (
                ns["base"](scale) ** expected,
                ns["base"](scale) ** (expected + 1),
            )
            near_edge = min(value / lower, upper / value) < 1 + 1e-9
            assert got == expected or near_edge, (value, scale, got, expected)


def test_prometheus_index_is_the_otel_index_plus_one(site: Site) -> None:
    ns, _ = run(block(site, "bucket-index"))
    for value in (0.0007, 0.3, 1.5, 42.0, 9000.0):
        for schema in range(-4, 9):
            assert (
                ns["prom_index"](value, schema) == ns["otel_index"](value, schema) + 1
            )


def test_downscaling_merges_buckets_like_the_sdk(site: Site) -> None:
    ns, _ = run(block(site, "bucket-index"))
    for value in (0.0007, 0.3, 1.5, 42.0, 9000.0):
        fine = sdk_index(value, 20)
        for target in (8, 3, 0, -4):
            assert ns["downscale"](fine, 20 - target) == sdk_index(value, target)


def test_sdk_defaults_match_the_prose() -> None:
    """ "The SDK starts at scale 20 ... to fit at most 160 buckets"."""
    defaults = inspect.signature(ExponentialBucketHistogramAggregation).parameters
    assert defaults["max_scale"].default == 20
    assert defaults["max_size"].default == 160


# -- PromQL ----------------------------------------------------------------------


def test_join_adds_the_node_from_target_info(site: Site) -> None:
    expr = promql_parser.parse(block(site, "join"))
    assert type(expr).__name__ == "AggregateExpr"
    assert str(expr.op) == "sum"
    assert list(expr.modifier.labels) == ["k8s_node_name"]
    join = expr.expr
    assert type(join).__name__ == "BinaryExpr"
    assert list(join.modifier.matching.labels) == ["job", "instance"]
    assert str(join.modifier.card).endswith("ManyToOne")  # group_left
    assert list(join.modifier.group_labels) == ["k8s_node_name"]
    assert join.rhs.name == "target_info"


def test_info_call_asks_for_the_node(site: Site) -> None:
    expr = promql_parser.parse(block(site, "info"))
    assert type(expr).__name__ == "AggregateExpr"
    call = expr.expr
    assert type(call).__name__ == "Call" and call.func.name == "info"
    assert call.func.experimental  # needs promql-experimental-functions
    assert 'k8s_node_name=~".+"' in call.prettify()
    # Same question as the join: the same rate selector feeds both.
    join = promql_parser.parse(block(site, "join")).expr.lhs
    assert call.args[0].prettify() == join.prettify()


def quantile_queries(site: Site) -> list[str]:
    return [q.strip() for q in block(site, "quantiles").split("\n\n") if q.strip()]


def test_quantile_queries_read_classic_then_native(site: Site) -> None:
    classic, native, otlp = [promql_parser.parse(q) for q in quantile_queries(site)]
    assert "_bucket" in classic.prettify() and "by (le)" in classic.prettify()
    assert "_bucket" not in native.prettify() and " by " not in native.prettify()
    # Review round 3: over OTLP the native histogram first lives under the
    # View's temporary name; the query falls back to it with `or`.
    inner = otlp.args[1]
    assert type(inner).__name__ == "BinaryExpr" and str(inner.op).lower().endswith("or")
    names = {side.expr.args[0].vector_selector.name for side in (inner.lhs, inner.rhs)}
    assert names == {
        "http_server_request_duration_seconds",
        translated("http.server.request.duration.native", "s"),
    }


OR_FALLBACK = """
tests:
  - interval: 1m
    input_series:
      - series: 'native_total'   # the View's temporary name; ages out after the switch
        values: '0+60x60'
      - series: 'bare_total'     # the original name, from the switch on
        values: '_x30 0+120x30'
    promql_expr_test:
      - expr: sum(rate(bare_total[5m])) or sum(rate(native_total[5m]))
        eval_time: 20m
        exp_samples: [{labels: '{}', value: 1}]
      - expr: sum(rate(bare_total[5m])) or sum(rate(native_total[5m]))
        eval_time: 40m
        exp_samples: [{labels: '{}', value: 2}]
"""


def test_or_fallback_reads_the_temporary_name_until_the_switch(
    site: Site, tmp_path: Path
) -> None:
    """Stand-in counters for the two names (promtool 2.42 cannot load native
    histograms): before the switch only the temporary name has data, after it
    the original name wins. The rates differ so that the test can tell."""
    assert " or " in quantile_queries(site)[2]
    (tmp_path / "or.yml").write_text(OR_FALLBACK)
    result = promtool_run("test", "rules", "or.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "or.yml").write_text(OR_FALLBACK.replace("value: 2}", "value: 1}"))
    assert promtool_run("test", "rules", "or.yml", cwd=tmp_path).returncode != 0


# -- The Prometheus configuration ------------------------------------------------

#: Option names from the Prometheus 3.14 configuration reference.
TOP_LEVEL = {
    "global", "runtime", "rule_files", "scrape_config_files", "scrape_configs",
    "alerting", "remote_write", "otlp", "remote_read", "storage", "tracing",
}  # fmt: skip
GLOBAL = {
    "scrape_interval", "scrape_timeout", "scrape_protocols", "evaluation_interval",
    "rule_query_offset", "external_labels", "query_log_file",
    "scrape_failure_log_file", "body_size_limit", "sample_limit", "label_limit",
    "label_name_length_limit", "label_value_length_limit", "target_limit",
    "keep_dropped_targets", "metric_name_validation_scheme",
    "scrape_native_histograms", "convert_classic_histograms_to_nhcb",
    "always_scrape_classic_histograms", "extra_scrape_metrics",
}  # fmt: skip
OTLP = {
    "promote_resource_attributes", "promote_all_resource_attributes",
    "ignore_resource_attributes", "translation_strategy",
    "keep_identifying_resource_attributes", "convert_histograms_to_nhcb",
    "promote_scope_metadata", "label_name_underscore_sanitization",
    "label_name_preserve_multiple_underscores",
}  # fmt: skip
TRANSLATION_STRATEGIES = {
    "UnderscoreEscapingWithSuffixes", "UnderscoreEscapingWithoutSuffixes",
    "NoUTF8EscapingWithSuffixes", "NoTranslation",
}  # fmt: skip
#: Keys of the essay's config that the installed promtool (Debian's 2.42)
#: rejects: the 3.x OTLP and histogram options, and Kubernetes service
#: discovery, which Debian's build leaves out. They are checked against the 3.14
#: option names above instead.
NEWER_THAN_PROMTOOL = {
    ("otlp",),
    ("global", "scrape_native_histograms"),
    ("global", "always_scrape_classic_histograms"),
    ("global", "scrape_protocols"),  # 2.49
}
#: Attributes that change on every restart: never promoted, removed in the Collector.
VOLATILE = {"container.id", "process.pid", "k8s.container.restart_count"}
#: The Prometheus guide's suggested promotion list (all fixed for an instance's life).
GUIDE_LIST = {
    "service.instance.id", "service.name", "service.namespace", "service.version",
    "cloud.availability_zone", "cloud.region", "container.name",
    "deployment.environment", "deployment.environment.name", "k8s.cluster.name",
    "k8s.container.name", "k8s.cronjob.name", "k8s.daemonset.name",
    "k8s.deployment.name", "k8s.job.name", "k8s.namespace.name", "k8s.pod.name",
    "k8s.replicaset.name", "k8s.statefulset.name",
}  # fmt: skip


@pytest.fixture
def prometheus_config(site: Site) -> dict[str, Any]:
    config = yaml.safe_load(block(site, "prometheus"))
    assert isinstance(config, dict)
    return config


def for_old_promtool(config: dict[str, Any]) -> dict[str, Any]:
    """The config without the keys that Debian's promtool does not know."""
    config = yaml.safe_load(yaml.safe_dump(config))
    removed = set()
    for path in NEWER_THAN_PROMTOOL:
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        removed.add(path)
    for job in config["scrape_configs"]:
        if "kubernetes_sd_configs" in job:
            del job["kubernetes_sd_configs"]
            job["static_configs"] = [{"targets": ["pod.invalid:9090"]}]
    assert removed == NEWER_THAN_PROMTOOL
    return config


def test_promtool_accepts_the_prometheus_config(
    prometheus_config: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(for_old_promtool(prometheus_config))
    )
    result = promtool_run(
        "check", "config", "--syntax-only", "prometheus.yml", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_can_fail(
    prometheus_config: dict[str, Any], tmp_path: Path
) -> None:
    broken = for_old_promtool(prometheus_config)
    broken["remote_write"][0]["send_native_histogram"] = True  # misspelt
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(broken))
    result = promtool_run(
        "check", "config", "--syntax-only", "prometheus.yml", cwd=tmp_path
    )
    assert result.returncode != 0


def test_newer_keys_are_documented_options(prometheus_config: dict[str, Any]) -> None:
    assert set(prometheus_config) <= TOP_LEVEL
    assert set(prometheus_config["global"]) <= GLOBAL
    assert set(prometheus_config["otlp"]) <= OTLP
    assert prometheus_config["otlp"]["translation_strategy"] in TRANSLATION_STRATEGIES


def test_native_histograms_keep_classic_buckets_and_leave_the_server(
    site: Site, prometheus_config: dict[str, Any]
) -> None:
    """With native scraping on, the classic buckets need
    always_scrape_classic_histograms, and remote write drops native histograms
    unless send_native_histograms is true (or the 2.0 message is used)."""
    settings = prometheus_config["global"]
    assert settings["scrape_native_histograms"] is True
    assert settings["always_scrape_classic_histograms"] is True
    for job in prometheus_config["scrape_configs"]:
        assert job.get("always_scrape_classic_histograms", True), job["job_name"]
    for target in prometheus_config["remote_write"]:
        v2 = target.get("protobuf_message") == "io.prometheus.write.v2.Request"
        assert v2 or target.get("send_native_histograms") is True, target["url"]
    assert "_bucket" in block(site, "quantiles")


def test_exemplars_and_scopes_leave_the_server_intact(
    prometheus_config: dict[str, Any], site: Site
) -> None:
    """Review round 3: send_exemplars defaults to false, so the exemplar section
    worked only against the replicas; and without promote_scope_metadata two
    scopes' streams with one name and attributes merge into one series."""
    for target in prometheus_config["remote_write"]:
        assert target.get("send_exemplars") is True, target["url"]
    assert prometheus_config["otlp"]["promote_scope_metadata"] is True
    assert "send_exemplars" in prose(site) and "promote_scope_metadata" in prose(site)


def test_promotion_is_a_short_allowlist_of_fixed_attributes(
    prometheus_config: dict[str, Any],
) -> None:
    otlp = prometheus_config["otlp"]
    assert not otlp.get("promote_all_resource_attributes", False)
    promoted = set(otlp["promote_resource_attributes"])
    assert len(promoted) == 3  # "the three that the scrape job also sets"
    assert promoted <= GUIDE_LIST  # attributes fixed for an instance's life
    assert not promoted & VOLATILE
    # job and instance already carry the identifying attributes.
    assert not promoted & {"service.name", "service.namespace", "service.instance.id"}


def test_prometheus_is_one_replica_of_a_deduplicated_pair(
    prometheus_config: dict[str, Any],
) -> None:
    labels = prometheus_config["global"]["external_labels"]
    # The Cortex and Mimir HA trackers' default label names, sent with every remote write.
    assert labels["__replica__"] == "a" and labels["cluster"]
    assert len(prometheus_config["remote_write"]) == 1
    assert prometheus_config["rule_files"]  # the transfer alerts live here


def relabel(
    labels: dict[str, str], configs: list[dict[str, Any]]
) -> dict[str, str] | None:
    """Prometheus relabelling, for the actions the essay uses: keep, drop,
    replace (the default), labeldrop. Regexes are anchored, as in Prometheus."""
    labels = dict(labels)
    for config in configs:
        action = config.get("action", "replace")
        regex = re.compile(f"^(?:{config.get('regex', '(.*)')})$")
        value = config.get("separator", ";").join(
            labels.get(name, "") for name in config.get("source_labels", [])
        )
        if action == "keep" and not regex.match(value):
            return None
        if action == "drop" and regex.match(value):
            return None
        if action == "replace" and (m := regex.match(value)):
            replacement = config.get("replacement", "$1")
            labels[config["target_label"]] = re.sub(
                r"\$\{?(\d+)\}?", lambda g: m.group(int(g.group(1))) or "", replacement
            )
        if action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.match(k)}
    return labels


def scrape_targets(
    job: dict[str, Any], pods: list[dict[str, str]]
) -> list[dict[str, str]]:
    """The targets a job keeps from Kubernetes pod discovery, with their labels."""
    kept = []
    for pod in pods:
        labels = relabel(pod, job.get("relabel_configs", []))
        if labels is not None:
            labels.setdefault("instance", labels["__address__"])
            kept.append({k: v for k, v in labels.items() if not k.startswith("__")})
    return kept


def pod_targets(ip: str, labels: dict[str, str], annotations: dict[str, str],
                ports: dict[str, int], namespace: str = "observability",
                pod: str = "pod", container: str = "main") -> list[dict[str, str]]:  # fmt: skip
    """What the `pod` role discovers: one target per declared container port."""
    meta = {"__meta_kubernetes_namespace": namespace,
            "__meta_kubernetes_pod_name": pod,
            "__meta_kubernetes_pod_container_name": container}  # fmt: skip
    meta |= {f"__meta_kubernetes_pod_label_{re.sub(r'[^a-zA-Z0-9_]', '_', k)}": v
             for k, v in labels.items()}  # fmt: skip
    meta |= {f"__meta_kubernetes_pod_annotation_{re.sub(r'[^a-zA-Z0-9_]', '_', k)}": v
             for k, v in annotations.items()}  # fmt: skip
    return [
        {
            **meta,
            "__address__": f"{ip}:{port}",
            "__meta_kubernetes_pod_container_port_name": name,
        }
        for name, port in ports.items()
    ]


COLLECTOR_POD = pod_targets(
    "10.1.0.7",
    {
        "app.kubernetes.io/name": "otel-collector",
        "app.kubernetes.io/component": "delta",
    },
    {},
    {"otlp-grpc": 4317, "otlp-http": 4318, "metrics": 8888},
)
LEGACY_POD = pod_targets(
    "10.1.0.9",
    {"app.kubernetes.io/name": "legacy-billing"},
    {"prometheus.io/scrape": "true"},
    {"http": 8080, "metrics": 9100},
    namespace="billing",
    pod="legacy-billing-5f6c9-q8z2m",
    container="billing",
)
#: An OpenTelemetry-instrumented service with the SDK's Prometheus exporter on
#: its default port, 9464, declared as the container port named `metrics`.
SDK_POD = pod_targets(
    "10.1.0.10",
    {"app.kubernetes.io/name": "checkout"},
    {"prometheus.io/scrape": "true"},
    {"http": 8080, "otlp-grpc": 4317, "metrics": 9464},
    namespace="shop",
    pod="checkout-7d9-x2k4f",
    container="checkout",
)


def job(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(j for j in config["scrape_configs"] if j["job_name"] == name)


def test_collectors_are_scraped_on_their_metrics_port_only(
    prometheus_config: dict[str, Any], site: Site
) -> None:
    """Review round 2: the old job kept every declared port (4317, 4318) and no
    Collector served 0.0.0.0:8888, so the Collector alerts saw nothing."""
    collectors = job(prometheus_config, "otel-collector")
    pods = COLLECTOR_POD + LEGACY_POD + SDK_POD
    assert scrape_targets(collectors, pods) == [
        {"instance": "10.1.0.7:8888", "tier": "delta"}
    ]
    # Review round 5: scraping SDKs is the default path, so the services job
    # keeps the SDK exporter's port 9464 as well as a legacy /metrics port.
    services = job(prometheus_config, "services")
    assert [t["instance"] for t in scrape_targets(services, pods)] == [
        "billing.legacy-billing-5f6c9-q8z2m.billing",
        "shop.checkout-7d9-x2k4f.checkout",
    ]
    # The port scraped is the one every Collector serves its telemetry on.
    readers = [
        reader["pull"]["exporter"]["prometheus"]
        for tier in ("front", "delta")
        for reader in collector(site, tier)["service"]["telemetry"]["metrics"][
            "readers"
        ]
    ]
    assert [(r["host"], r["port"]) for r in readers] == [("0.0.0.0", 8888)] * 2


def test_each_replica_scrapes_itself_and_its_peer(
    prometheus_config: dict[str, Any], site: Site
) -> None:
    """Review round 2: localhost:9090 gave both replicas one `instance`."""
    targets = job(prometheus_config, "prometheus")["static_configs"][0]["targets"]
    hosts = {t.split(":")[0] for t in targets}
    assert hosts == {"prometheus-a.monitoring.svc", "prometheus-b.monitoring.svc"}
    # The same addresses the delta tier sends OTLP to.
    endpoints = {
        e["endpoint"].split("/")[2].split(":")[0]
        for name, e in collector(site, "delta")["exporters"].items()
        if kind(name) == "otlp_http"
    }
    assert endpoints == hosts


def test_both_replicas_send_the_same_alert(prometheus_config: dict[str, Any]) -> None:
    """Prometheus adds external labels to alerts, then applies
    alert_relabel_configs; without dropping __replica__ the pair pages twice."""
    alerting = prometheus_config["alerting"]
    assert alerting["alertmanagers"][0]["static_configs"][0]["targets"]
    alert = {
        "alertname": "CollectorDown",
        "instance": "10.1.0.8:8888",
        "severity": "page",
    }
    sent = []
    for replica in ("a", "b"):
        external = {
            **prometheus_config["global"]["external_labels"],
            "__replica__": replica,
        }
        labels = {**external, **alert}  # external labels never override the alert's
        sent.append(relabel(labels, alerting["alert_relabel_configs"]))
    assert sent[0] == sent[1]
    assert "__replica__" not in sent[0] and sent[0]["cluster"] == "prod-eu-1"
    # The same replay without the labeldrop shows two different alerts.
    assert relabel({**alert, "__replica__": "a"}, []) != relabel(
        {**alert, "__replica__": "b"}, []
    )


#: Flags and --enable-feature names of `prometheus --help` in Prometheus 3.14.
FLAGS = {
    "--config.file", "--web.enable-otlp-receiver", "--web.enable-remote-write-receiver",
    "--enable-feature", "--agent", "--query.lookback-delta", "--web.config.file",
}  # fmt: skip
FEATURES = {
    "concurrent-rule-eval", "created-timestamp-zero-ingestion", "delayed-compaction",
    "exemplar-storage", "extra-scrape-metrics", "histograms-st-encoding",
    "memory-snapshot-on-shutdown", "metadata-wal-records", "old-ui",
    "otlp-deltatocumulative", "otlp-native-delta-ingestion",
    "promql-binop-fill-modifiers", "promql-delayed-name-removal",
    "promql-experimental-functions", "promql-extended-range-selectors",
    "promql-per-step-stats", "search-api", "st-storage", "st-synthesis",
    "type-and-unit-labels", "use-start-timestamps", "use-uncached-io",
    "xor2-encoding",
}  # fmt: skip


def test_command_line_enables_what_the_essay_uses(site: Site) -> None:
    words = shlex.split(block(site, "flags").replace("\\\n", " "))
    assert words[0] == "prometheus"
    options = dict(w.split("=", 1) if "=" in w else (w, "") for w in words[1:])
    assert set(options) <= FLAGS
    features = set(options["--enable-feature"].split(","))
    assert features <= FEATURES
    assert "--web.enable-otlp-receiver" in options
    assert "exemplar-storage" in features
    assert "created-timestamp-zero-ingestion" in features
    # info() in the essay is experimental.
    assert promql_parser.parse(block(site, "info")).expr.func.experimental
    assert "promql-experimental-functions" in features


# -- The transfer-failure alerts -------------------------------------------------

COLLECTOR = {"job": "otel-collector", "instance": "10.1.0.7:8888", "tier": "delta"}
FRONT = {"job": "otel-collector", "instance": "10.1.0.6:8888", "tier": "front"}
RECEIVER = {**FRONT, "receiver": "otlp"}
DEAD_COLLECTOR = {"job": "otel-collector", "instance": "10.1.0.8:8888", "tier": "delta"}
#: A delta Collector whose exporter to replica b stalls while its twin sends.
STALLED = {"job": "otel-collector", "instance": "10.1.0.9:8888", "tier": "delta"}
EXPORTER = {**COLLECTOR, "exporter": "otlp_http/prom-b"}
PROM_A = {"job": "prometheus", "instance": "prometheus-a.monitoring.svc:9090"}
PROM_B = {"job": "prometheus", "instance": "prometheus-b.monitoring.svc:9090"}
QUEUE = {
    **PROM_A,
    "remote_name": "1a2b3c",
    "url": "https://metrics-store.internal/api/v1/push",
}
CHECKOUT = {"job": "shop/checkout", "instance": "shop.checkout-7d9-x2k4f.checkout"}
NIGHTLY = {"job": "shop/nightly-export", "instance": "shop.nightly-export-29x7q.export"}
NODE = {
    "job": "monitoring/node-exporter",
    "instance": "monitoring.node-exporter-7xk2p.node-exporter",
}
WARNINGS = {**PROM_A, "category": "label_name_collision"}
OTLP_HANDLER = {"handler": "/api/v1/otlp/v1/metrics"}


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


#: The Collector's own counters that the alerts read, under their instrument
#: names, and the tier whose reader exposes them in the replays below.
COLLECTOR_COUNTERS = {
    "otelcol_receiver_refused_metric_points": "front",
    "otelcol_processor_filter_datapoints_filtered": "front",
    "otelcol_receiver_accepted_metric_points": "delta",
    "otelcol_deltatocumulative_datapoints": "delta",
    "otelcol_exporter_sent_metric_points": "delta",
    "otelcol_exporter_send_failed_metric_points": "delta",
    "otelcol_exporter_enqueue_failed_metric_points": "delta",
}
#: The Collector's gauges that the alerts read: no type suffix either way.
COLLECTOR_GAUGES = {
    "otelcol_exporter_queue_size",
    "otelcol_exporter_queue_capacity",
    "otelcol_loadbalancer_num_backends",
}


def served_reader(site: Site, tier: str) -> dict[str, Any]:
    readers = collector(site, tier)["service"]["telemetry"]["metrics"]["readers"]
    (served,) = [r["pull"]["exporter"]["prometheus"] for r in readers if "pull" in r]
    assert isinstance(served, dict)
    return served


def exposed(counter: str, reader: dict[str, Any]) -> str:
    """The name under which a Collector's Prometheus reader serves a counter.

    The OTel Go exporter appends ``_total`` unless ``without_type_suffix`` is
    set (Collector CHANGELOG, #11611; its own ``otelconftelemetry`` test,
    which sets all three ``without_`` options, scrapes a counter without
    it), and a Prometheus scrape, text or protobuf, adds no suffix to a
    counter. Unit suffixes are not modelled, so the reader must drop them."""
    assert reader.get("without_units") is True, "unit suffixes are not modelled"
    return counter if reader.get("without_type_suffix") is True else counter + "_total"


def exposed_names(site: Site, override: dict[str, Any] | None = None) -> dict[str, str]:
    """Each counter's instrument name mapped to the name its tier's reader
    serves; *override* replaces options of both readers."""
    return {
        counter: exposed(counter, {**served_reader(site, tier), **(override or {})})
        for counter, tier in COLLECTOR_COUNTERS.items()
    }


def renamed(item: dict[str, str], names: dict[str, str]) -> dict[str, str]:
    name, brace, rest = item["series"].partition("{")
    return {**item, "series": names.get(name, name) + brace + rest}


#: (input series of a broken pipeline, of a healthy one): one per failure.
PIPELINE = [
    (series("up", DEAD_COLLECTOR, "0x120"), series("up", DEAD_COLLECTOR, "1x120")),
    (
        series("otelcol_receiver_refused_metric_points", {**RECEIVER, "transport": "grpc"}, "0+100x120"),
        series("otelcol_receiver_refused_metric_points", {**RECEIVER, "transport": "grpc"}, "0x120"),
    ),
    (
        series("prometheus_remote_storage_samples_failed_total", QUEUE, "0+50x120"),
        series("prometheus_remote_storage_samples_failed_total", QUEUE, "0x120"),
    ),
    (
        series("prometheus_remote_storage_samples_total", QUEUE, "0+1000x120"),
        series("prometheus_remote_storage_samples_total", QUEUE, "0+1000x120"),
    ),
    (
        series("otelcol_exporter_sent_metric_points", EXPORTER, "500x120"),
        series("otelcol_exporter_sent_metric_points", EXPORTER, "0+600x120"),
    ),
    (
        series("otelcol_exporter_sent_metric_points", {**STALLED, "exporter": "otlp_http/prom-a"}, "0+600x120"),
        series("otelcol_exporter_sent_metric_points", {**STALLED, "exporter": "otlp_http/prom-a"}, "0+600x120"),
    ),
    (
        series("otelcol_exporter_sent_metric_points", {**STALLED, "exporter": "otlp_http/prom-b"}, "500x120"),
        series("otelcol_exporter_sent_metric_points", {**STALLED, "exporter": "otlp_http/prom-b"}, "0+600x120"),
    ),
    (
        series("otelcol_exporter_send_failed_metric_points", EXPORTER, "0+600x120"),
        series("otelcol_exporter_send_failed_metric_points", EXPORTER, "0x120"),
    ),
    (
        series("otelcol_exporter_enqueue_failed_metric_points", EXPORTER, "0+100x120"),
        series("otelcol_exporter_enqueue_failed_metric_points", EXPORTER, "0x120"),
    ),
    (
        series("otelcol_exporter_queue_size", EXPORTER, "900x120"),
        series("otelcol_exporter_queue_size", EXPORTER, "3x120"),
    ),
    (
        series("otelcol_exporter_queue_capacity", EXPORTER, "1000x120"),
        series("otelcol_exporter_queue_capacity", EXPORTER, "1000x120"),
    ),
    (series("up", PROM_B, "0x120"), series("up", PROM_B, "1x120")),
    (
        series("prometheus_http_requests_total", {**PROM_A, **OTLP_HANDLER, "code": "400"}, "0+50x120"),
        series("prometheus_http_requests_total", {**PROM_A, **OTLP_HANDLER, "code": "200"}, "0+50x120"),
    ),
    (
        series("prometheus_http_requests_total", {**PROM_B, **OTLP_HANDLER, "code": "503"}, "0+50x120"),
        series("prometheus_http_requests_total", {**PROM_B, **OTLP_HANDLER, "code": "503"}, "0x120"),
    ),
    (
        series("prometheus_remote_storage_queue_highest_timestamp_seconds", QUEUE, "60+60x120"),
        series("prometheus_remote_storage_queue_highest_timestamp_seconds", QUEUE, "60+60x120"),
    ),
    (
        series("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", QUEUE, "60x120"),
        series("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", QUEUE, "60+60x120"),
    ),
    (series("target_info", CHECKOUT, "1x5"), series("target_info", CHECKOUT, "1x120")),
    (
        series("otelcol_receiver_accepted_metric_points", {**COLLECTOR, "receiver": "otlp", "transport": "grpc"}, "0+600x120"),
        series("otelcol_receiver_accepted_metric_points", {**COLLECTOR, "receiver": "otlp", "transport": "grpc"}, "0+600x120"),
    ),
    (
        series("otelcol_deltatocumulative_datapoints", {**COLLECTOR, "error": "out_of_order"}, "0+10x120"),
        series("otelcol_deltatocumulative_datapoints", COLLECTOR, "0+600x120"),
    ),
    (series("up", COLLECTOR, "1x120"), series("up", COLLECTOR, "1x120")),
    (
        series("otelcol_processor_filter_datapoints_filtered", {**FRONT, "processor": "filter/delta_policy"}, "0+30x120"),
        series("otelcol_processor_filter_datapoints_filtered", {**FRONT, "processor": "filter/delta_policy"}, "0x120"),
    ),
    (
        series("otelcol_loadbalancer_num_backends", {**FRONT, "resolver": "dns"}, "2x120"),
        series("otelcol_loadbalancer_num_backends", {**FRONT, "resolver": "dns"}, "2x120"),
    ),
    (
        series("prometheus_api_otlp_translation_warnings_total", WARNINGS, "0+5x120"),
        series("prometheus_api_otlp_translation_warnings_total", WARNINGS, "0x120"),
    ),
    (
        series("batch_last_success_timestamp_seconds", NIGHTLY, "0x120"),  # then nothing for 27h
        series("batch_last_success_timestamp_seconds", NIGHTLY, "95000x120"),
    ),
    (series("node_timex_offset_seconds", NODE, "0.2x120"), series("node_timex_offset_seconds", NODE, "0.001x120")),
    (series("node_timex_sync_status", NODE, "0x120"), series("node_timex_sync_status", NODE, "1x120")),
    (series("node_timex_maxerror_seconds", NODE, "16x120"), series("node_timex_maxerror_seconds", NODE, "16x120")),
    (
        series("prometheus_tsdb_head_series", PROM_A, "1000x50 2000x70"),
        series("prometheus_tsdb_head_series", PROM_A, "1000x120"),
    ),
]  # fmt: skip

#: Each alert, the labels it fires with on the broken pipeline, and when.
FIRES = {
    "CollectorDown": (DEAD_COLLECTOR, "25m"),
    "CollectorTierDegraded": ({"job": "otel-collector", "tier": "delta"}, "25m"),
    "CollectorRefusing": (RECEIVER, "25m"),
    "CollectorNotSending": (COLLECTOR, "25m"),
    "CollectorNotSendingToReplica": (
        {**STALLED, "exporter": "otlp_http/prom-b"},
        "25m",
    ),
    "CollectorExportFailing": (EXPORTER, "25m"),
    "CollectorExportFailed": (EXPORTER, "25m"),
    "DeltaConversionFailing": (COLLECTOR, "25m"),
    "DeltaFromUnlistedService": (FRONT, "25m"),
    "DeltaTierViewsDiffer": ({"job": "otel-collector"}, "25m"),
    "OTLPAttributesCollide": ({"instance": PROM_A["instance"]}, "25m"),
    "BatchJobNotSucceeding": ({"job": NIGHTLY["job"]}, "27h"),
    "HostClockSkewed": (NODE, "25m"),
    "HostClockNotSynchronising": (NODE, "25m"),
    "CollectorQueueDropping": (EXPORTER, "25m"),
    "CollectorQueueDroppedPoints": (EXPORTER, "25m"),
    "CollectorQueueFilling": (EXPORTER, "25m"),
    "PrometheusPeerDown": (PROM_B, "25m"),
    "PrometheusRejectingOTLP": ({"instance": PROM_A["instance"]}, "25m"),
    "PrometheusRejectedOTLP": ({"instance": PROM_A["instance"], "code": "400"}, "25m"),
    "PrometheusOTLPUnavailable": ({"instance": PROM_B["instance"]}, "25m"),
    "RemoteWriteFailing": (QUEUE, "25m"),
    "RemoteWriteBehind": (QUEUE, "25m"),
    "ServiceStoppedPushing": ({"job": CHECKOUT["job"]}, "25m"),
    "SeriesGrowing": (PROM_A, "100m"),
}


#: Alerts that the broken-pipeline replay cannot fire, tested on their own
#: below: a constant clock lag needs data that arrives over time, and the
#: missing-metrics guard needs the counters that the other alerts read gone.
NOT_REPLAYED = {
    "ExpectedServiceMissing",  # its inventory names jobs the replay lacks
    "PushedCanaryMissing",
    "Watchdog",
    "PushedClockLagging",
    "CollectorMetricsMissing",
    "PrometheusMetricsMissing",
}


def rule_groups(site: Site) -> list[dict[str, Any]]:
    return yaml.safe_load(block(site, "alerts"))["groups"]


def alert_rules(site: Site) -> list[dict[str, Any]]:
    return [r for g in rule_groups(site) for r in g["rules"] if "alert" in r]


def recording_rules(site: Site) -> list[dict[str, Any]]:
    return [r for g in rule_groups(site) for r in g["rules"] if "record" in r]


def replayed_rules(site: Site) -> list[dict[str, Any]]:
    return [r for r in alert_rules(site) if r["alert"] not in NOT_REPLAYED]


def render(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)


def replay(
    site: Site, *, broken: bool, names: dict[str, str] | None = None
) -> dict[str, Any]:
    """A promtool replay: every alert fires on the broken pipeline, none on the
    healthy one. Expected labels and annotations follow from the rules; the
    Collector's counters carry the names its readers serve, or *names*."""
    names = exposed_names(site) if names is None else names
    tests = []
    for rule in replayed_rules(site):
        name = rule["alert"]
        labels, at = FIRES[name]
        expected = []
        if broken:
            fired = {**labels, **rule.get("labels", {})}
            expected = [
                {
                    "exp_labels": fired,
                    "exp_annotations": {
                        k: render(v, fired) for k, v in rule["annotations"].items()
                    },
                }
            ]
        tests.append({"eval_time": at, "alertname": name, "exp_alerts": expected})
    return {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "broken" if broken else "healthy",
                "interval": "1m",
                "input_series": [
                    renamed(pair[0 if broken else 1], names) for pair in PIPELINE
                ],
                "alert_rule_test": tests,
            }
        ],
    }


def test_promtool_accepts_the_alerts(site: Site, tmp_path: Path) -> None:
    (tmp_path / "alerts.yml").write_text(block(site, "alerts"))
    result = promtool_run("check", "rules", "alerts.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = len(FIRES) + len(NOT_REPLAYED) + len(recording_rules(site))
    assert f"{rules} rules found" in result.stdout


@pytest.mark.parametrize("broken", [True, False])
def test_alerts_fire_on_a_broken_pipeline_only(
    site: Site, tmp_path: Path, broken: bool
) -> None:
    (tmp_path / "alerts.yml").write_text(block(site, "alerts"))
    (tmp_path / "replay.yml").write_text(yaml.safe_dump(replay(site, broken=broken)))
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_replay_would_catch_a_silent_pipeline(site: Site, tmp_path: Path) -> None:
    (tmp_path / "alerts.yml").write_text(block(site, "alerts"))
    wrong = replay(site, broken=True)
    for case in wrong["tests"][0]["alert_rule_test"]:
        if case["alertname"] == "PrometheusRejectingOTLP":
            case["exp_alerts"] = []
    (tmp_path / "replay.yml").write_text(yaml.safe_dump(wrong))
    assert promtool_run("test", "rules", "replay.yml", cwd=tmp_path).returncode != 0


def test_both_readers_drop_the_type_suffix(site: Site) -> None:
    """Review round 5: the counters are served without `_total`, by both tiers."""
    for counter, name in exposed_names(site).items():
        assert name == counter
    assert set(exposed_names(site, {"without_type_suffix": False}).values()) == {
        f"{c}_total" for c in COLLECTOR_COUNTERS
    }


def guard_replay(site: Site, names: dict[str, str], *, fires: bool) -> dict[str, Any]:
    """The healthy pipeline, its counters named *names*: the guard fires, and
    CollectorNotSending stays quiet, only if the rules read other names."""
    rule = rule_named(site, "CollectorMetricsMissing")
    fired = {"job": "otel-collector", **rule["labels"]}
    guard = [{"exp_labels": fired, "exp_annotations": rule["annotations"]}]
    return {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [renamed(pair[1], names) for pair in PIPELINE],
                "alert_rule_test": [
                    {"eval_time": "25m", "alertname": rule["alert"],
                     "exp_alerts": guard if fires else []},
                    {"eval_time": "25m", "alertname": "CollectorNotSending",
                     "exp_alerts": []},
                ],
            }
        ],
    }  # fmt: skip


@pytest.mark.parametrize("suffixed", [False, True])
def test_a_renamed_counter_tickets_instead_of_going_quiet(
    site: Site, tmp_path: Path, suffixed: bool
) -> None:
    """Review round 5: with the names the readers serve, the guard is quiet;
    with the names of a reader that keeps `_total`, every Collector rule
    matches nothing, and the guard fires (a ticket since round 15)."""
    override = {"without_type_suffix": False} if suffixed else None
    names = exposed_names(site, override)
    (tmp_path / "alerts.yml").write_text(block(site, "alerts"))
    replay_ = guard_replay(site, names, fires=suffixed)
    (tmp_path / "replay.yml").write_text(yaml.safe_dump(replay_))
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_suffixed_names_would_silence_the_collector_alerts(
    site: Site, tmp_path: Path
) -> None:
    """Review round 5: the broken pipeline served with `_total` names, as a
    reader without `without_type_suffix` would, fires none of
    the Collector counter alerts, so the replay fails."""
    (tmp_path / "alerts.yml").write_text(block(site, "alerts"))
    names = exposed_names(site, {"without_type_suffix": False})
    (tmp_path / "replay.yml").write_text(
        yaml.safe_dump(replay(site, broken=True, names=names))
    )
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "CollectorNotSending" in result.stdout + result.stderr


#: Alerts on data that is already lost: tickets that fire without a `for`.
#: Review round 5: their pages fire only on a rate over 1 % for 5m.
ALREADY_LOST = {
    "CollectorQueueDroppedPoints",
    "PrometheusRejectedOTLP",
    "CollectorExportFailed",
    "DeltaConversionFailing",
    "DeltaFromUnlistedService",
    "OTLPAttributesCollide",
}


def test_every_alert_is_routable_and_documented(site: Site) -> None:
    """Review rounds 2 and 3: severity, summary and runbook on every rule; a
    `for` on every rule but those whose data is already lost (round 3: a
    rejected OTLP request is, so PrometheusRejectingOTLP lost its 10m `for`)."""
    rules = alert_rules(site)
    assert {rule["alert"] for rule in rules} == set(FIRES) | NOT_REPLAYED
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket", "heartbeat"}, rule[
            "alert"
        ]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["runbook_url"].startswith("https://"), rule["alert"]
        unhurried = ALREADY_LOST | {"Watchdog"}  # Watchdog fires from the start
        assert ("for" in rule) == (rule["alert"] not in unhurried), rule["alert"]


def test_retirements_open_tickets_not_pages(site: Site) -> None:
    """Review round 3: the heartbeat alert also fires when a service is retired
    or renamed, so it must not page."""
    rule = next(r for r in alert_rules(site) if r["alert"] == "ServiceStoppedPushing")
    assert rule["labels"]["severity"] == "ticket"


#: Head series after a truncation that halves them at 60m, a quiet period, and
#: a rollout at 100m that brings them back: churn, not growth.
TRUNCATION = series("prometheus_tsdb_head_series", PROM_A, "1000x59 300x40 1000x80")


def growth_replay(rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "rule_files": ["growth.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [TRUNCATION],
                "alert_rule_test": [
                    {"eval_time": f"{m}m", "alertname": rule["alert"], "exp_alerts": []}
                    for m in range(100, 181, 5)
                ],
            }
        ],
    }


def test_series_growth_ignores_head_truncation(site: Site, tmp_path: Path) -> None:
    """Review round 3: compared with an hour ago, regrowth after a truncation
    fired the alert; compared with the previous day's peak it does not."""
    rule = next(r for r in alert_rules(site) if r["alert"] == "SeriesGrowing")
    assert "max_over_time(prometheus_tsdb_head_series[1d]" in rule["expr"]
    for expr, quiet in (
        (rule["expr"], True),
        ("prometheus_tsdb_head_series > 1.5 * (prometheus_tsdb_head_series offset 1h)", False),
    ):  # fmt: skip
        groups = {"groups": [{"name": "g", "rules": [{**rule, "expr": expr}]}]}
        (tmp_path / "growth.yml").write_text(yaml.safe_dump(groups))
        (tmp_path / "replay.yml").write_text(yaml.safe_dump(growth_replay(rule)))
        result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
        assert (result.returncode == 0) is quiet, (expr, result.stdout)


def test_alerts_watch_every_hop_the_prose_names(site: Site) -> None:
    exprs = " ".join(rule["expr"] for rule in alert_rules(site))
    names = exposed_names(site)
    # Review round 5: every Collector metric is read under the name its
    # readers serve; the `_total` names of round 4 matched nothing.
    assert (
        set(re.findall(r"\botelcol_\w+", exprs))
        == set(names.values()) | COLLECTOR_GAUGES
    )
    for metric in (
        'up{job="otel-collector"}',  # the Collectors' own scrape job
        names["otelcol_receiver_refused_metric_points"],  # refused back to SDKs
        names["otelcol_exporter_sent_metric_points"],  # absence of success
        names["otelcol_exporter_send_failed_metric_points"],
        names["otelcol_exporter_enqueue_failed_metric_points"],
        "otelcol_exporter_queue_size",
        'up{job="prometheus"}',  # each replica scrapes its peer
        'handler="/api/v1/otlp/v1/metrics"',
        "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
        "prometheus_remote_storage_samples_failed_total",  # the mixin's failure rate
        "target_info",
        "prometheus_tsdb_head_series",
    ):
        assert metric in exprs, metric


def test_stopped_pushing_is_generic_not_one_rule_per_service(site: Site) -> None:
    """Review round 2: the heartbeat alert covers every pushed job, not one."""
    rule = next(r for r in alert_rules(site) if r["alert"] == "ServiceStoppedPushing")
    assert "shop/checkout" not in rule["expr"]
    assert promql_parser.parse(rule["expr"]) is not None


# -- The Collector configurations -------------------------------------------------

#: Component types of current otelcol-contrib builds, under their new names.
RECEIVERS = {"otlp", "prometheus"}
PROCESSORS = {"memory_limiter", "filter", "transform", "delta_to_cumulative"}
EXPORTERS = {"otlp_http", "load_balancing", "prometheus_remote_write"}
EXTENSIONS = {"file_storage"}
CONNECTORS = {"routing"}
STATEFUL = {"prometheus", "delta_to_cumulative"}
OPTIONS = {
    "memory_limiter": {"check_interval", "limit_percentage", "spike_limit_percentage"},
    "transform": {"error_mode", "metric_statements"},
    "filter": {"error_mode", "metric_conditions"},
    "delta_to_cumulative": {"max_stale", "max_streams"},
    "load_balancing": {"routing_key", "protocol", "resolver"},
    "otlp_http": {
        "endpoint",
        "tls",
        "headers",
        "sending_queue",
        "retry_on_failure",
        "timeout",
    },
    "file_storage": {"directory", "timeout"},
    "routing": {"default_pipelines", "table", "error_mode"},
}


def collector(site: Site, tier: str) -> dict[str, Any]:
    config = yaml.safe_load(block(site, f"collector-{tier}"))
    assert isinstance(config, dict)
    return config


def kind(component_id: str) -> str:
    return component_id.split("/", 1)[0]


#: Nested option names of the core components, from the config.schema.yaml
#: files of open-telemetry/opentelemetry-collector (August 2026, v0.159.0):
#: receiver/otlpreceiver, config/configgrpc and confighttp (server and client),
#: exporter/otlphttpexporter, exporterhelper's queuebatch, config/configretry,
#: internal/memorylimiter. A value of None accepts any value. The service's
#: telemetry readers follow the Collector's internal-telemetry documentation.
_HTTP_SERVER = dict.fromkeys([
    "auth", "compression_algorithms", "cors", "endpoint", "idle_timeout",
    "include_metadata", "keep_alives_enabled", "max_request_body_size",
    "middlewares", "read_header_timeout", "read_timeout", "response_headers",
    "tls", "write_timeout", "logs_url_path", "metrics_url_path", "traces_url_path",
])  # fmt: skip
_GRPC_SERVER = dict.fromkeys([
    "auth", "include_metadata", "keepalive", "max_concurrent_streams",
    "max_recv_msg_size_mib", "middlewares", "read_buffer_size", "tls",
    "write_buffer_size", "endpoint", "transport", "dialer",
])  # fmt: skip
_QUEUE: dict[str, Any] = dict.fromkeys([
    "batch", "block_on_overflow", "enabled", "num_consumers", "queue_size",
    "sizer", "storage", "wait_for_result",
])  # fmt: skip
#: exporterhelper README, "Sending queue batch settings"; `enabled` is the
#: configoptional switch, stable since configoptional.AddEnabledField was.
_QUEUE["batch"] = dict.fromkeys(
    ["enabled", "flush_timeout", "min_size", "max_size", "sizer", "partition"]
)
_RETRY = dict.fromkeys([
    "enabled", "initial_interval", "max_elapsed_time", "max_interval",
    "multiplier", "randomization_factor",
])  # fmt: skip
_HTTP_CLIENT = dict.fromkeys([
    "auth", "compression", "compression_params", "cookies", "disable_keep_alives",
    "endpoint", "force_attempt_http2", "headers", "http2_ping_timeout",
    "http2_read_idle_timeout", "idle_conn_timeout", "max_conns_per_host",
    "max_idle_conns", "max_idle_conns_per_host", "middlewares", "proxy_url",
    "read_buffer_size", "timeout", "tls", "write_buffer_size",
])  # fmt: skip
CORE_SCHEMA: dict[str, Any] = {
    "otlp": {"protocols": {"grpc": _GRPC_SERVER, "http": _HTTP_SERVER}},
    "otlp_http": {
        **_HTTP_CLIENT,
        "encoding": None,
        "logs_endpoint": None,
        "metrics_endpoint": None,
        "profiles_endpoint": None,
        "traces_endpoint": None,
        "retry_on_failure": _RETRY,
        "sending_queue": _QUEUE,
    },
    "memory_limiter": dict.fromkeys(
        [
            "check_interval",
            "limit_mib",
            "limit_percentage",
            "spike_limit_mib",
            "spike_limit_percentage",
            "min_gc_interval_when_soft_limited",
            "min_gc_interval_when_hard_limited",
            "max_gc_interval_when_soft_limited",
            "max_gc_interval_when_hard_limited",
        ]
    ),
    "telemetry": {
        "metrics": {
            "level": None,
            "readers": [
                {
                    "pull": {
                        "exporter": {
                            "prometheus": dict.fromkeys(
                                [
                                    "host",
                                    "port",
                                    "without_type_suffix",
                                    "without_units",
                                    "without_scope_info",
                                    "with_resource_constant_labels",
                                ]
                            )
                        }
                    }
                }
            ],
        },
        "logs": None,
        "traces": None,
        "resource": None,
    },
}


def unknown_keys(value: Any, schema: Any, path: str = "") -> list[str]:
    """Keys in *value* that *schema* does not allow, as dotted paths."""
    if schema is None:
        return []
    if isinstance(schema, list):
        assert isinstance(value, list), path
        return [k for item in value for k in unknown_keys(item, schema[0], path + "[]")]
    assert isinstance(value, dict), path
    found = []
    for key, inner in value.items():
        if key not in schema:
            found.append(f"{path}.{key}".lstrip("."))
        else:
            found += unknown_keys(inner, schema[key], f"{path}.{key}")
    return found


@pytest.mark.parametrize("tier", ["front", "delta"])
def test_core_components_use_only_schema_options(site: Site, tier: str) -> None:
    config = collector(site, tier)
    checked = 0
    for section in ("receivers", "processors", "exporters"):
        for component, settings in config[section].items():
            if kind(component) in CORE_SCHEMA:
                assert unknown_keys(settings or {}, CORE_SCHEMA[kind(component)]) == []
                checked += 1
    assert unknown_keys(config["service"]["telemetry"], CORE_SCHEMA["telemetry"]) == []
    assert checked >= 2


def test_schema_check_would_catch_a_misplaced_key(site: Site) -> None:
    delta = collector(site, "delta")
    exporter = delta["exporters"]["otlp_http/prom-a"]
    exporter["sending_queue"]["max_elapsed_time"] = "20m"  # belongs in retry_on_failure
    assert unknown_keys(exporter, CORE_SCHEMA["otlp_http"]) == [
        "sending_queue.max_elapsed_time"
    ]
    # The pre-v0.123.0 address setting is ignored now; the check rejects it too.
    telemetry = {"metrics": {"address": "0.0.0.0:8888"}}
    assert unknown_keys(telemetry, CORE_SCHEMA["telemetry"]) == ["metrics.address"]


@pytest.mark.parametrize("tier", ["front", "delta"])
def test_every_collector_can_be_scraped(site: Site, tier: str) -> None:
    """Review round 2: by default the Collector serves its metrics only on
    127.0.0.1:8888, so no Prometheus could scrape the exporter metrics."""
    readers = collector(site, tier)["service"]["telemetry"]["metrics"]["readers"]
    served = [r["pull"]["exporter"]["prometheus"] for r in readers if "pull" in r]
    assert ("0.0.0.0", 8888) in [(s.get("host"), s.get("port")) for s in served]


@pytest.mark.parametrize("tier", ["front", "delta"])
def test_collector_pipeline_is_consistent(site: Site, tier: str) -> None:
    """Every defined component is used; a connector is an exporter of one
    pipeline and a receiver of another (review round 10: the front tier's
    routing connector)."""
    config = collector(site, tier)
    pipelines = config["service"]["pipelines"]
    connectors = set(config.get("connectors", {}))
    assert {kind(c) for c in connectors} <= CONNECTORS
    for section, allowed in (
        ("receivers", RECEIVERS),
        ("processors", PROCESSORS),
        ("exporters", EXPORTERS),
    ):
        defined = set(config[section])
        used = {c for p in pipelines.values() for c in p.get(section, [])}
        assert used - connectors == defined, section
        assert {kind(c) for c in defined} <= allowed, section
        for component, settings in config[section].items():
            if kind(component) in OPTIONS:
                assert set(settings or {}) <= OPTIONS[kind(component)], component
    for connector, settings in config.get("connectors", {}).items():
        assert set(settings) <= OPTIONS[kind(connector)], connector
        assert any(connector in p.get("exporters", []) for p in pipelines.values())
        assert any(connector in p.get("receivers", []) for p in pipelines.values())
    (entry,) = [p for p in pipelines.values() if "otlp" in p["receivers"]]
    assert entry["processors"][0] == "memory_limiter"  # first, as advised
    extensions = set(config.get("extensions", {}))
    assert {kind(e) for e in extensions} <= EXTENSIONS
    assert set(config["service"].get("extensions", [])) == extensions


def test_no_collector_writes_the_long_term_store(
    site: Site, prometheus_config: dict[str, Any]
) -> None:
    """Finding 1 of the review: one path into the store, through Prometheus."""
    for tier in ("front", "delta"):
        kinds = {kind(e) for e in collector(site, tier)["exporters"]}
        assert "prometheus_remote_write" not in kinds, tier
    url = prometheus_config["remote_write"][0]["url"]
    assert url not in block(site, "collector-front") + block(site, "collector-delta")


def test_front_tier_is_stateless_and_routes_by_stream(site: Site) -> None:
    front = collector(site, "front")
    components = [*front["receivers"], *front["processors"], *front["exporters"],
                  *front.get("connectors", {})]  # fmt: skip
    assert not {kind(c) for c in components} & STATEFUL
    assert not front.get("extensions")  # no storage: in-memory queues only
    for settings in front["exporters"].values():
        assert "storage" not in settings.get("sending_queue", {})
    balancer = front["exporters"]["load_balancing"]
    assert balancer["routing_key"] == "streamID"
    # The deletion happens before routing, so a restart continues one stream.
    statements = front["processors"]["transform/drop_volatile"]["metric_statements"]
    deleted = {
        m.group(1)
        for s in statements
        if (m := re.fullmatch(r'delete_key\(resource\.attributes, "([^"]+)"\)', s))
    }
    assert deleted == VOLATILE
    # It sends to the delta tier, which listens for OTLP/gRPC on the default port.
    delta = collector(site, "delta")
    assert "otel-delta" in balancer["resolver"]["dns"]["hostname"]
    assert delta["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")


def test_resolver_refreshes_often_and_the_converter_keeps_its_default(
    site: Site,
) -> None:
    """Review round 3: the prose said to lower the resolver's refresh interval
    but the config set none, and max_stale: 10m doubled the default without a
    reason, widening the window in which a stream resumes an outdated total."""
    dns = collector(site, "front")["exporters"]["load_balancing"]["resolver"]["dns"]
    assert seconds(dns["interval"]) <= 5
    converter = collector(site, "delta")["processors"]["delta_to_cumulative"]
    assert "max_stale" not in (converter or {})
    assert "five minutes by default" in prose(site)


OTLP_DELTA_CONDITION = re.compile(
    r"metric\.aggregation_temporality == AGGREGATION_TEMPORALITY_DELTA"
)


def test_front_tier_routes_only_deltas_to_the_converters(site: Site) -> None:
    """Review round 10, finding 1: every pushed stream went through the alpha,
    stateful converter. Now the routing connector sends delta metrics to the
    load balancer and everything else straight to both replicas."""
    front = collector(site, "front")
    pipelines = front["service"]["pipelines"]
    routing = front["connectors"]["routing"]
    (route,) = routing["table"]
    assert route["context"] == "metric"
    assert OTLP_DELTA_CONDITION.fullmatch(route["condition"].strip())
    (delta_pipeline,) = route["pipelines"]
    (default_pipeline,) = routing["default_pipelines"]
    assert pipelines[delta_pipeline]["receivers"] == ["routing"]
    assert pipelines[delta_pipeline]["exporters"] == ["load_balancing"]
    assert pipelines[default_pipeline]["receivers"] == ["routing"]
    assert {kind(e) for e in pipelines[default_pipeline]["exporters"]} == {"otlp_http"}
    # The balancer appears only behind the delta route.
    for name, pipeline in pipelines.items():
        if "load_balancing" in pipeline.get("exporters", []):
            assert name == delta_pipeline
    assert "delta_to_cumulative" not in {
        kind(p) for pl in pipelines.values() for p in pl.get("processors", [])
    }


def replica_exporters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in config["exporters"].items() if kind(n) == "otlp_http"}


def test_front_tier_sends_cumulative_streams_to_both_replicas(site: Site) -> None:
    front = collector(site, "front")
    exporters = replica_exporters(front)
    hosts = set()
    for settings in exporters.values():
        base = settings["endpoint"]
        assert re.fullmatch(r"https://[^/]+:9090/api/v1/otlp", base), base
        hosts.add(base.split("/")[2].split(".")[0])
        assert settings["sending_queue"]["batch"] == {"enabled": False}
        assert 300 < seconds(settings["retry_on_failure"]["max_elapsed_time"]) < 1800
    assert hosts == {"prometheus-a", "prometheus-b"}


def test_delta_tier_fans_out_to_both_replicas(site: Site) -> None:
    """Every batch to each HA replica, each exporter with its own persistent queue
    (the exporter helper asks the storage extension for one client per exporter)."""
    delta = collector(site, "delta")
    assert "prometheus" not in {kind(r) for r in delta["receivers"]}
    assert "delta_to_cumulative" in delta["processors"]
    exporters = {
        name: settings
        for name, settings in delta["exporters"].items()
        if kind(name) == "otlp_http"
    }
    assert set(delta["service"]["pipelines"]["metrics"]["exporters"]) == set(exporters)
    assert len(exporters) == 2
    hosts = set()
    for settings in exporters.values():
        base = settings["endpoint"]
        # otlp_http appends /v1/metrics; Prometheus serves /api/v1/otlp/v1/metrics.
        assert re.fullmatch(r"https://[^/]+:9090/api/v1/otlp", base), base
        hosts.add(base.split("/")[2])
        storage = settings["sending_queue"]["storage"]
        assert kind(storage) == "file_storage" and storage in delta["extensions"]
        # Review round 7: exporter batching would merge services' requests,
        # which Prometheus refuses whole; it is pinned off, not left to the
        # default that the batching migration plans to turn on.
        assert settings["sending_queue"]["batch"] == {"enabled": False}
        # Retry longer than the 5m default, but inside the 30m out-of-order window.
        assert 300 < seconds(settings["retry_on_failure"]["max_elapsed_time"]) < 1800
    assert {h.split(".")[0] for h in hosts} == {"prometheus-a", "prometheus-b"}
    # The queue lives on the pod's volume, not in a directory that must be made.
    for settings in delta["extensions"].values():
        assert settings["directory"].startswith("/var/lib/otelcol/")


def test_the_out_of_order_window_bounds_the_retries(
    site: Site, prometheus_config: dict[str, Any]
) -> None:
    window = seconds(prometheus_config["storage"]["tsdb"]["out_of_order_time_window"])
    for tier in ("front", "delta"):
        exporters = replica_exporters(collector(site, tier))
        assert len(exporters) == 2, tier
        for settings in exporters.values():
            assert seconds(settings["retry_on_failure"]["max_elapsed_time"]) < window


#: The request rate toward each replica that the queues are sized for, as the
#: prose gives it, and the exporter helper's default queue, in requests.
REQUESTS_PER_SECOND = 10
DEFAULT_QUEUE_SIZE = 1000
#: Round 17, finding 3: the front tier's in-memory queues count serialized
#: bytes, at the prose's assumed ten requests a second of 20 KiB each, inside
#: the memory budget its comment states (a 2 GiB pod, memory_limiter at 80 %).
BYTES_PER_SECOND = REQUESTS_PER_SECOND * 20 * 1024
POD_MEMORY = 2 * 1024**3


def queue_rate(tier: str) -> int:
    """Units per second that a tier's queue fills at while a replica is down."""
    return BYTES_PER_SECOND if tier == "front" else REQUESTS_PER_SECOND


def test_each_queue_outlasts_its_retries(site: Site) -> None:
    """Review round 10, finding 2: the fan-out joins both exporters' errors, so
    a full queue to a dead replica fails every request. Each queue holds its
    retries' 20 minutes of requests at the stated rate; the default 1,000
    would fill in 100 seconds. The in-memory front tier pins wait_for_result
    off, so a request never waits out a dead replica's retries."""
    text = prose(site)
    assert "the default 1,000 would last 100 seconds" in text
    assert DEFAULT_QUEUE_SIZE / REQUESTS_PER_SECOND == 100
    # Round 17, finding 3: the front tier's in-memory queues are sized in
    # bytes from a memory budget; the rate is stated, and the prose says how
    # to measure it (the enqueue-size histogram, at the detailed level).
    assert "ten requests a second of 20 KiB, 256 MiB lasts about 22 minutes" in text
    assert "otelcol_exporter_enqueue_size_bytes" in text and "detailed" in text
    assert "to a quarter full, to full, and to the first refusal" in text
    front = collector(site, "front")
    assert front["service"]["telemetry"]["metrics"]["level"] == "detailed"
    budget = 0
    for tier in ("front", "delta"):
        for name, settings in replica_exporters(collector(site, tier)).items():
            queue = settings["sending_queue"]
            sizer = queue.get("sizer", "requests")
            assert sizer == ("bytes" if tier == "front" else "requests"), name
            assert (tier == "delta") == ("storage" in queue), name
            assert not queue.get("block_on_overflow", False), name
            retries = seconds(settings["retry_on_failure"]["max_elapsed_time"])
            assert queue["queue_size"] >= queue_rate(tier) * retries, name
            assert REQUESTS_PER_SECOND * retries > DEFAULT_QUEUE_SIZE, name
            if tier == "front":
                assert queue["wait_for_result"] is False, name
                budget += queue["queue_size"]
                assert round(queue["queue_size"] / BYTES_PER_SECOND / 60) == 22
    # Both front queues fit well inside what memory_limiter leaves the pod.
    limiter = front["processors"]["memory_limiter"]
    assert budget <= 0.5 * POD_MEMORY * limiter["limit_percentage"] / 100


def test_no_batching_processor_runs_ahead_of_the_fan_out(site: Site) -> None:
    """Review round 11, finding 2: wait_for_result: false is the exporter
    helper's default, which the batching-migration RFC keeps; the hazard is
    the new queuebatch processor (v0.159.0 README: batching on, and
    block_on_overflow: true), which would merge services' requests and block
    senders. Neither tier runs it, nor the batch processor."""
    assert "wait_for_result: false is pinned at the default" in prose(site)
    assert "planned default" not in prose(site)
    for tier in ("front", "delta"):
        pipelines = collector(site, tier)["service"]["pipelines"]
        for name, pipeline in pipelines.items():
            kinds = {kind(p) for p in pipeline.get("processors", [])}
            assert not kinds & {"batch", "queuebatch", "queue_batch"}, (tier, name)


#: What Prometheus 3.14 answers with a 400 (storage/interface.go errors, and
#: the remote-write appender's future-timestamp wrap); http.Error adds "\n".
PROMETHEUS_400_BODIES = [
    b"out of order sample\n",
    b"out of bounds\n",
    b"out of bounds: timestamp is too far in the future\n",
    b"too old sample\n",
    b"duplicate sample for timestamp\n",
]


def test_a_400_reason_never_reaches_the_collector_log(site: Site) -> None:
    """Review round 11, finding 1: Prometheus logs no 400 from its OTLP handler
    (only 500s and decode failures), and answers in plain text. The otlp_http
    exporter decodes an error body as a protobuf Status and otherwise keeps
    only the code and URL; plain text is not valid protobuf wire format for
    any message, so the reason is lost. The runbook therefore names the
    Collector's log and the clock alerts, not a log that names the sender."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )

    for body in PROMETHEUS_400_BODIES:
        with pytest.raises(DecodeError):
            ExportMetricsServiceResponse().ParseFromString(body)
    text = prose(site)
    assert (
        "none of the rejected-sample 400s" in text
    )  # round 12: decode failures are logged
    assert "Exporting failed. Dropping data." in text
    for name in ("PrometheusRejectingOTLP", "PrometheusRejectedOTLP"):
        summary = rule_named(site, name)["annotations"]["summary"]
        assert "its log" not in summary, name
        assert "Collector" in summary, name


def test_diagram_draws_the_configured_design(site: Site) -> None:
    graphs = [n for n in doctree(site).findall() if n.tagname == "graphviz"]
    assert len(graphs) == 1
    edges = set(re.findall(r"(\w+) -> (\w+)", graphs[0]["code"]))
    assert {("delta", "proma"), ("delta", "promb")} <= edges  # fan-out
    assert {("proma", "lts"), ("promb", "lts")} <= edges  # Prometheus writes the store
    assert {src for src, dst in edges if dst == "lts"} == {"proma", "promb"}
    assert ("front", "delta") in edges and ("app", "front") in edges
    # Review round 10: cumulative streams skip the delta tier.
    assert {("front", "proma"), ("front", "promb")} <= edges
    # Review round 5: the default path is a scrape of the services by both
    # replicas; only jobs and unreachable services push through the tiers.
    assert {("scraped", "proma"), ("scraped", "promb")} <= edges
    assert not {dst for src, dst in edges if src == "scraped"} & {"front", "delta"}


# -- Setting service.instance.id --------------------------------------------------

DOWNWARD_API = {
    "metadata.namespace": "shop",
    "metadata.name": "checkout-7d9-x2k4f",
    "spec.nodeName": "node-eu-1a-7",
}


def kubernetes_env(env: list[dict[str, Any]]) -> dict[str, str]:
    """A container's environment as the kubelet builds it: downward-API values,
    and $(VAR) expanded only from variables defined earlier in the list."""
    built: dict[str, str] = {}
    for var in env:
        if "valueFrom" in var:
            built[var["name"]] = DOWNWARD_API[var["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            built[var["name"]] = re.sub(
                r"\$\((\w+)\)",
                lambda m: built.get(m.group(1), m.group(0)),
                var["value"],
            )
    return built


def test_pod_spec_sets_the_per_pod_instance_id(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK reads the expanded variables and names the instance
    namespace.pod.container, the semantic conventions' Kubernetes rule."""
    env = yaml.safe_load(block(site, "instance-id"))["env"]
    values = kubernetes_env(env)
    assert "$(" not in "".join(values.values())  # every reference was defined earlier
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    from opentelemetry.sdk.resources import Resource

    attributes = Resource.create().attributes
    assert attributes["service.name"] == "checkout"
    assert attributes["service.namespace"] == "shop"
    container = "checkout"  # the container's name in the pod spec
    assert attributes["service.instance.id"] == ".".join(
        [DOWNWARD_API["metadata.namespace"], DOWNWARD_API["metadata.name"], container]
    )
    # No attribute that changes on restart is set by the pod spec.
    assert not set(attributes) & VOLATILE
    # Review round 5: the join and info() group by k8s_node_name, which
    # target_info carries only if the resource has k8s.node.name; the pod spec
    # sets it, since no Collector here runs the k8sattributes processor.
    assert attributes["k8s.node.name"] == DOWNWARD_API["spec.nodeName"]
    join = promql_parser.parse(block(site, "join"))
    (label,) = join.modifier.labels
    assert label.replace("_", ".") in attributes
    processors = {
        kind(p)
        for tier in ("front", "delta")
        for p in collector(site, tier)["processors"]
    }
    assert "k8sattributes" not in processors


def test_instance_id_check_would_catch_a_misordered_env(site: Site) -> None:
    env = yaml.safe_load(block(site, "instance-id"))["env"]
    reordered = env[-1:] + env[:-1]  # OTEL_RESOURCE_ATTRIBUTES first
    assert "$(" in kubernetes_env(reordered)["OTEL_RESOURCE_ATTRIBUTES"]


# -- Histogram migration over OTLP ------------------------------------------------


def test_two_views_emit_classic_and_native_side_by_side(site: Site) -> None:
    code = block(site, "views")
    namespace, printed = run(code)
    promised = [
        line.removeprefix("# ")
        for line in code.splitlines()[-2:]
        if line.startswith("# ")
    ]
    assert printed == promised
    data = namespace["reader"].get_metrics_data()
    metrics = {
        metric.name: metric.data
        for scope in data.resource_metrics[0].scope_metrics
        for metric in scope.metrics
    }
    classic = metrics["http.server.request.duration"]
    native = metrics["http.server.request.duration.native"]
    assert list(classic.data_points[0].explicit_bounds)  # becomes _bucket{le}
    assert native.data_points[0].scale <= 20  # becomes a native histogram
    # After Prometheus's default translation the two cannot collide.
    assert translated("http.server.request.duration.native", "s") != translated(
        "http.server.request.duration", "s"
    )


def translated(name: str, unit: str) -> str:
    """UnderscoreEscapingWithSuffixes for a histogram in seconds (the essay's case)."""
    assert unit == "s"
    return re.sub(r"[^a-zA-Z0-9_:]", "_", name) + "_seconds"


def test_one_view_alone_would_drop_the_classic_buckets(site: Site) -> None:
    """The prose's reason for two Views: with only the exponential View the
    original name carries no explicit buckets any more."""
    code = block(site, "views").replace(
        "        View(instrument_name=DURATION),  # classic _bucket{le}, _sum, _count\n",
        "",
    )
    assert code != block(site, "views")
    _, printed = run(code)
    assert printed == ["http.server.request.duration.native ExponentialHistogram"]


# -- Review round 4 ----------------------------------------------------------------


def rule_named(site: Site, name: str) -> dict[str, Any]:
    return next(r for r in alert_rules(site) if r["alert"] == name)


def otlp_status_replay(rule: dict[str, Any], code: str) -> dict[str, Any]:
    """A Prometheus restart: OTLP answered with *code* for ten minutes."""
    labels = {**PROM_A, **OTLP_HANDLER, "code": code}
    return {
        "rule_files": ["otlp.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    series(
                        "prometheus_http_requests_total",
                        labels,
                        "0+0x20 0+30x10 300x30",
                    )
                ],
                "alert_rule_test": [
                    {"eval_time": f"{m}m", "alertname": rule["alert"], "exp_alerts": []}
                    for m in range(20, 61, 2)
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("expr", "quiet"),
    [
        (None, True),  # the essay's rule
        ('code!~"2.."', False),  # round 3's rule paged on every restart
    ],
)
def test_a_restart_does_not_page(
    site: Site, tmp_path: Path, expr: str | None, quiet: bool
) -> None:
    """Review round 4: the 503 that Prometheus answers while it replays its WAL
    or stops is retried by otlp_http, so it must not page; it is a ticket."""
    rule = rule_named(site, "PrometheusRejectingOTLP")
    if expr is not None:
        rule = {**rule, "expr": rule["expr"].replace('code=~"400|500"', expr)}
        assert expr in rule["expr"]
    (tmp_path / "otlp.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]})
    )
    (tmp_path / "replay.yml").write_text(
        yaml.safe_dump(otlp_status_replay(rule, "503"))
    )
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert (result.returncode == 0) is quiet, result.stdout
    unavailable = rule_named(site, "PrometheusOTLPUnavailable")
    assert unavailable["labels"]["severity"] == "ticket"
    assert seconds(unavailable["for"]) >= 15 * 60


def clock_replay(
    rule: dict[str, Any], values: str, checks: dict[str, Any]
) -> dict[str, Any]:
    return {
        "rule_files": ["clock.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [series("target_info", CHECKOUT, values)],
                **checks,
            }
        ],
    }


def clock_group(site: Site) -> dict[str, Any]:
    (group,) = [g for g in rule_groups(site)
                if any(r.get("alert") == "PushedClockLagging" for r in g["rules"])]  # fmt: skip
    return group


#: The condition that tells a host still pushing from a retired pod.
ADVANCING = " and changes(instance:target_info_newest_timestamp_seconds:max[15m]) > 0"


@pytest.mark.parametrize(("advancing", "quiet"), [(True, True), (False, False)])
def test_a_retired_pod_never_looks_like_a_slow_clock(
    site: Site, tmp_path: Path, advancing: bool, quiet: bool
) -> None:
    """Review round 4: the freshness alert must not fire for every pod a deploy
    retires. Review round 11, finding 4: with the band widened to the hour
    Prometheus accepts in order, a `for` alone no longer outlasts a retired
    pod's crossing; the recorded newest timestamp stops changing, so the rule
    that asks for it to advance stays quiet, and the rule without it fires."""
    record, rule = clock_group(site)["rules"]
    assert rule["expr"].endswith(ADVANCING)
    if not advancing:
        rule = {**rule, "expr": rule["expr"].removesuffix(ADVANCING)}
    (tmp_path / "clock.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [record, rule]}]})
    )
    checks = {
        "alert_rule_test": [
            {"eval_time": f"{m}m", "alertname": rule["alert"], "exp_alerts": []}
            for m in range(40, 121, 2)
        ]
    }
    replay_ = clock_replay(rule, "1x40", checks)  # the pod stops pushing at 40m
    (tmp_path / "replay.yml").write_text(yaml.safe_dump(replay_))
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert (result.returncode == 0) is quiet, result.stdout


def test_clock_lag_is_the_age_of_the_newest_target_info(
    site: Site, tmp_path: Path
) -> None:
    """A host whose newest sample is 50 minutes old, beyond the five-minute
    lookback that hides it from instant queries, still has a measured lag:
    the recorded newest timestamp reaches back the hour."""
    record, rule = clock_group(site)["rules"]
    (tmp_path / "clock.yml").write_text(yaml.safe_dump({"groups": []}))
    labels = {"job": CHECKOUT["job"], "instance": CHECKOUT["instance"]}
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    lag = f"time() - {record['expr']}"
    checks = {
        "promql_expr_test": [
            {"expr": lag, "eval_time": "90m",
             "exp_samples": [{"labels": "{" + inner + "}", "value": 3000}]},
            {"expr": "target_info", "eval_time": "90m", "exp_samples": []},
            {"expr": lag + " > 180", "eval_time": "42m", "exp_samples": []},  # fresh
        ]
    }  # fmt: skip
    (tmp_path / "replay.yml").write_text(
        yaml.safe_dump(clock_replay(rule, "1x40", checks))
    )
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("lag", "band", "fires"),
    [(300, None, True), (2400, None, True), (3300, None, True),
     (60, None, False), (4200, None, False),
     (2400, "< 1800", False)],  # round 11's band: blind from 30 to 60 minutes
)  # fmt: skip
def test_a_host_pushing_late_tickets_up_to_an_hour(
    site: Site, tmp_path: Path, lag: int, band: str | None, fires: bool
) -> None:
    """Review round 11, finding 4: Prometheus accepts in order down to the head's
    newest sample minus half a two-hour block, so a host up to an hour slow is
    accepted silently. A host still pushing, whose recorded newest timestamp
    advances at a constant lag, tickets across that hour; beyond it, its
    points are refused and PrometheusRejectedOTLP tickets instead. promtool
    cannot deliver late points, so the recorded series is the input here."""
    _, rule = clock_group(site)["rules"]
    assert "> 180 < 3600" in rule["expr"]
    if band is not None:
        rule = {**rule, "expr": rule["expr"].replace("< 3600", band)}
    labels = {"job": CHECKOUT["job"], "instance": CHECKOUT["instance"]}
    newest = series("instance:target_info_newest_timestamp_seconds:max", labels,
                    f"{-lag}+60x120")  # fmt: skip
    fired = {**labels, **rule["labels"]}
    annotations = {k: render(v, fired) for k, v in rule["annotations"].items()}
    checks = [{"eval_time": "60m", "alertname": rule["alert"],
               "exp_alerts": [{"exp_labels": fired, "exp_annotations": annotations}]
               if fires else []}]  # fmt: skip
    rules, test = one_rule_replay(rule, [newest], checks)
    assert promtool_replay(tmp_path, rules, test)


def test_last_over_time_ignores_a_staleness_marker(tmp_path: Path) -> None:
    """Review round 4, and the prose: use last_over_time on pushed gauges only,
    since a range selector keeps a scraped series past its marker."""
    (tmp_path / "empty.yml").write_text(yaml.safe_dump({"groups": []}))
    replay_ = {
        "rule_files": ["empty.yml"],
        "tests": [
            {
                "interval": "15s",
                "input_series": [
                    {"series": 'queue_depth{instance="a"}', "values": "40x39 stale"}
                ],
                "promql_expr_test": [
                    {"expr": "sum(queue_depth)", "eval_time": "11m", "exp_samples": []},
                    {"expr": "sum(last_over_time(queue_depth[3m]))", "eval_time": "11m",
                     "exp_samples": [{"labels": "{}", "value": 40}]},
                ],
            }
        ],
    }  # fmt: skip
    (tmp_path / "replay.yml").write_text(yaml.safe_dump(replay_))
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("tier", ["front", "delta"])
def test_explicit_readers_keep_the_default_names(site: Site, tier: str) -> None:
    """Review round 4: before v0.152.0 an explicit reader dropped the
    defaults' three without_ settings. Round 12: recent Collectors apply them
    to explicit readers too; the file keeps them for older Collectors."""
    readers = collector(site, tier)["service"]["telemetry"]["metrics"]["readers"]
    (served,) = [r["pull"]["exporter"]["prometheus"] for r in readers if "pull" in r]
    for key in ("without_scope_info", "without_units", "without_type_suffix"):
        assert served.get(key) is True, key


# -- Review round 5: page on rates, ticket on trickles ------------------------------


def trickle_replay(site: Site, page: str, ticket: str,
                   total: dict[str, Any], lost: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One lost request or point among thousands a minute: the ticket fires,
    the page does not."""
    rule = rule_named(site, ticket)
    fired = {**FIRES[ticket][0], **rule["labels"]}
    ticketed = {
        "exp_labels": fired,
        "exp_annotations": {
            k: render(v, fired) for k, v in rule["annotations"].items()
        },
    }
    return {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [total, lost],
                "alert_rule_test": [
                    {"eval_time": "12m", "alertname": ticket, "exp_alerts": [ticketed]},
                    *(
                        {"eval_time": f"{m}m", "alertname": page, "exp_alerts": []}
                        for m in range(10, 31, 2)
                    ),
                ],
            }
        ],
    }


TRICKLES = {
    "otlp": (
        "PrometheusRejectingOTLP",
        "PrometheusRejectedOTLP",
        series("prometheus_http_requests_total", {**PROM_A, **OTLP_HANDLER, "code": "200"}, "0+1000x40"),
        series("prometheus_http_requests_total", {**PROM_A, **OTLP_HANDLER, "code": "400"}, "0x10 1x30"),
    ),
    "queue": (
        "CollectorQueueDropping",
        "CollectorQueueDroppedPoints",
        series("otelcol_exporter_sent_metric_points", EXPORTER, "0+60000x40"),
        series("otelcol_exporter_enqueue_failed_metric_points", EXPORTER, "0x10 20x30"),
    ),
    "export": (
        "CollectorExportFailing",
        "CollectorExportFailed",
        series("otelcol_exporter_sent_metric_points", EXPORTER, "0+60000x40"),
        series("otelcol_exporter_send_failed_metric_points", EXPORTER, "0x10 20x30"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("path", list(TRICKLES))
def test_one_lost_request_opens_a_ticket_not_a_page(
    site: Site, tmp_path: Path, path: str
) -> None:
    page, ticket, total, lost = TRICKLES[path]
    assert rule_named(site, page)["labels"]["severity"] == "page"
    assert rule_named(site, ticket)["labels"]["severity"] == "ticket"
    (tmp_path / "alerts.yml").write_text(block(site, "alerts"))
    (tmp_path / "replay.yml").write_text(
        yaml.safe_dump(trickle_replay(site, page, ticket, total, lost))
    )
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", list(TRICKLES))
def test_the_old_any_loss_page_would_fire_on_a_trickle(
    site: Site, tmp_path: Path, path: str
) -> None:
    """Round 4's page was the ticket's expression: it paged on one request."""
    page, ticket, total, lost = TRICKLES[path]
    old = {**rule_named(site, ticket), "alert": page, "labels": {"severity": "page"}}
    old.pop("for", None)
    rules = [r for r in alert_rules(site) if r["alert"] != page] + [old]
    (tmp_path / "alerts.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "otlp-transfer", "rules": rules}]})
    )
    replay_ = trickle_replay(site, page, ticket, total, lost)
    (tmp_path / "replay.yml").write_text(yaml.safe_dump(replay_))
    assert promtool_run("test", "rules", "replay.yml", cwd=tmp_path).returncode != 0


# -- Review round 5: TLS and basic auth on the push endpoint ------------------------


def web_config(site: Site) -> dict[str, Any]:
    config = yaml.safe_load(block(site, "web-config"))
    assert isinstance(config, dict)
    return config


def checked_web_config(site: Site, tmp_path: Path, config: dict[str, Any]) -> Any:
    """`promtool check web-config` on *config*, its certificate and key made
    here with openssl (promtool loads them)."""
    tls = dict(config.get("tls_server_config", {}))
    if tls:
        openssl = shutil.which("openssl")
        assert openssl, "openssl is not installed"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=prometheus-a.monitoring.svc",
             "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")],
            check=True, capture_output=True,
        )  # fmt: skip
        for key in ("cert_file", "key_file"):
            if key in tls:
                tls[key] = str(tmp_path / Path(tls[key]).name)
        config = {**config, "tls_server_config": tls}
    (tmp_path / "web.yml").write_text(yaml.safe_dump(config))
    return promtool_run("check", "web-config", "web.yml", cwd=tmp_path)


def test_promtool_accepts_the_web_config(site: Site, tmp_path: Path) -> None:
    result = checked_web_config(site, tmp_path, web_config(site))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "broken",
    [
        {"basic_auth_users": {"otel-collector": "plaintext-password"}},  # not bcrypt
        {"tls_server_config": {"cert_file": "/etc/prometheus/tls/tls.crt"}},  # no key
    ],
)
def test_promtool_check_web_config_can_fail(
    site: Site, tmp_path: Path, broken: dict[str, Any]
) -> None:
    config = {**web_config(site), **broken}
    assert checked_web_config(site, tmp_path, config).returncode != 0


def test_every_client_of_prometheus_authenticates(
    site: Site, prometheus_config: dict[str, Any]
) -> None:
    """The web config covers every endpoint: the OTLP writers and the replicas'
    own scrape of each other must send a user it knows, over TLS."""
    users = set(web_config(site)["basic_auth_users"])
    assert "tls_server_config" in web_config(site)
    words = shlex.split(block(site, "flags").replace("\\\n", " "))
    assert "--web.config.file=/etc/prometheus/web.yml" in words
    peers = job(prometheus_config, "prometheus")
    assert peers["scheme"] == "https" and peers["tls_config"]["ca_file"]
    assert peers["basic_auth"]["username"] in users
    assert "password" not in peers["basic_auth"]  # from a file, not the config
    for tier in ("front", "delta"):
        exporters = replica_exporters(collector(site, tier))
        assert len(exporters) == 2, tier
        for name, exporter in exporters.items():
            assert exporter["endpoint"].startswith("https://"), name
            assert exporter["tls"]["ca_file"] and not exporter["tls"].get("insecure"), (
                name
            )
            header = exporter["headers"]["Authorization"]
            assert re.fullmatch(r"Basic \$\{env:\w+\}", header), (
                name
            )  # a Secret, not the file
    assert "otel-collector" in users


# -- Review round 6 ------------------------------------------------------------------


def replay_test(
    inputs: list[dict[str, str]], checks: list[dict[str, Any]], interval: str = "1m"
) -> dict[str, Any]:
    """A promtool test of *checks* on *inputs*, against rule.yml."""
    return {
        "rule_files": ["rule.yml"],
        "evaluation_interval": interval,
        "tests": [
            {"interval": interval, "input_series": inputs, "alert_rule_test": checks}
        ],
    }


def one_rule_replay(
    rule: dict[str, Any], inputs: list[dict[str, str]], checks: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A rule file with *rule* alone and a promtool test of *checks*."""
    rules = {"groups": [{"name": "g", "rules": [rule]}]}
    return rules, replay_test(inputs, checks)


def promtool_replay(
    tmp_path: Path, rules: dict[str, Any], test: dict[str, Any]
) -> bool:
    (tmp_path / "rule.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "replay.yml").write_text(yaml.safe_dump(test))
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    return result.returncode == 0


def quiet(rule: dict[str, Any], minutes: range) -> list[dict[str, Any]]:
    return [{"eval_time": f"{m}m", "alertname": rule["alert"], "exp_alerts": []}
            for m in minutes]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "is_quiet"),
    [(False, True), (True, False)],  # the essay's rule; round 5's sent == 0
)
def test_an_idle_collector_does_not_page(
    site: Site, tmp_path: Path, old: bool, is_quiet: bool
) -> None:
    """Review round 6: between batch jobs a Collector accepts and sends nothing;
    round 5's `sent == 0` paged every idle hour."""
    rule = rule_named(site, "CollectorNotSending")
    if old:
        rule = {**rule, "expr": "sum by (job, tier, instance, exporter) "
                "(rate(otelcol_exporter_sent_metric_points[5m])) == 0"}  # fmt: skip
    inputs = [
        series("otelcol_exporter_sent_metric_points", EXPORTER, "600x60"),
        series("otelcol_receiver_accepted_metric_points",
               {**COLLECTOR, "receiver": "otlp", "transport": "grpc"}, "600x60"),
    ]  # fmt: skip
    rules, test = one_rule_replay(rule, inputs, quiet(rule, range(10, 61, 5)))
    assert promtool_replay(tmp_path, rules, test) is is_quiet


#: Round 10's not-sending page: only the exporters to Prometheus, per exporter.
ROUND_10_NOT_SENDING = (
    'sum by (job, tier, instance, exporter) (rate(otelcol_exporter_sent_metric_points{exporter=~"otlp_http/.+"}[5m])) == 0'
    " and on (job, tier, instance)"
    " sum by (job, tier, instance) (rate(otelcol_receiver_accepted_metric_points[5m])) > 0"
)

#: A front-tier Collector's traffic, as the points each exporter sent, the
#: points its receiver accepted and those the delta policy dropped, with
#: whether a healthy tier looks like it (review round 10, finding 1).
FRONT_TRAFFIC = {
    "idle delta route": ({"load_balancing": "600x60", "otlp_http/prom-a": "0+600x60",
                          "otlp_http/prom-b": "0+600x60"}, "0+600x60", None, True),
    "deltas only": ({"load_balancing": "0+600x60", "otlp_http/prom-a": "600x60",
                     "otlp_http/prom-b": "600x60"}, "0+600x60", None, True),
    "unlisted deltas only": ({"load_balancing": "600x60", "otlp_http/prom-a": "600x60",
                              "otlp_http/prom-b": "600x60"}, "0+600x60", "0+600x60", True),
    "stalled": ({"load_balancing": "600x60", "otlp_http/prom-a": "600x60",
                 "otlp_http/prom-b": "600x60"}, "0+600x60", None, False),
    # Review round 11, finding 7: 95 % unlisted deltas, and the rest stuck.
    "stalled under unlisted deltas": ({"load_balancing": "600x60", "otlp_http/prom-a": "600x60",
                                       "otlp_http/prom-b": "600x60"},
                                      "0+60000x60", "0+57000x60", False),
}  # fmt: skip

#: Round 11's whole-Collector page: kept points compared with the policy's
#: drops as a ratio, so a stall hid while drops were over 91 % of the input.
ROUND_11_NOT_SENDING = (
    "sum by (job, tier, instance) (rate(otelcol_exporter_sent_metric_points[5m])) == 0"
    " and on (job, tier, instance)"
    " sum by (job, tier, instance) (rate(otelcol_receiver_accepted_metric_points[5m]))"
    " > 1.1 * sum by (job, tier, instance) ("
    " rate(otelcol_processor_filter_datapoints_filtered[5m])"
    " or 0 * rate(otelcol_receiver_accepted_metric_points[5m]))"
)


def front_inputs(traffic: str) -> list[dict[str, str]]:
    sent, accepted, filtered, _ = FRONT_TRAFFIC[traffic]
    inputs = [
        series("otelcol_exporter_sent_metric_points", {**FRONT, "exporter": e}, v)
        for e, v in sent.items()
    ]
    inputs.append(series("otelcol_receiver_accepted_metric_points",
                         {**FRONT, "receiver": "otlp", "transport": "grpc"}, accepted))  # fmt: skip
    if filtered:
        inputs.append(series("otelcol_processor_filter_datapoints_filtered",
                             {**FRONT, "processor": "filter/delta_policy"}, filtered))  # fmt: skip
    return inputs


@pytest.mark.parametrize("traffic", list(FRONT_TRAFFIC))
def test_the_front_tier_pages_only_when_it_stalls(
    site: Site, tmp_path: Path, traffic: str
) -> None:
    """Review round 10, finding 1: the front tier sends deltas through the load
    balancer, cumulative streams through the exporters to Prometheus, and
    unlisted deltas nowhere. The whole-Collector page sums every exporter and
    discounts the policy's drops; the per-replica page compares the twins."""
    healthy = FRONT_TRAFFIC[traffic][3]
    inputs = front_inputs(traffic)
    for name in ("CollectorNotSending", "CollectorNotSendingToReplica"):
        rule = rule_named(site, name)
        rules, test = one_rule_replay(rule, inputs, quiet(rule, range(10, 61, 5)))
        quiet_ = promtool_replay(tmp_path, rules, test)
        # A stalled Collector pages through the whole-Collector rule only.
        assert quiet_ is (healthy or name == "CollectorNotSendingToReplica"), name
    old = {**rule_named(site, "CollectorNotSending"), "expr": ROUND_10_NOT_SENDING}
    rules, test = one_rule_replay(old, inputs, quiet(old, range(10, 61, 5)))
    if traffic == "deltas only":  # the round-10 rule paged here
        assert not promtool_replay(tmp_path, rules, test)
    if (
        traffic == "unlisted deltas only"
    ):  # and without the policy's term, so would this
        kept = rule_named(site, "CollectorNotSending")["expr"].split(" - sum by")[0]
        assert kept.endswith("(rate(otelcol_receiver_accepted_metric_points[5m]))")
        blind = {**old, "expr": kept + " > 0"}
        rules, test = one_rule_replay(blind, inputs, quiet(blind, range(10, 61, 5)))
        assert not promtool_replay(tmp_path, rules, test)
    if traffic == "stalled under unlisted deltas":  # round 11's ratio stayed quiet
        ratio = {**old, "expr": ROUND_11_NOT_SENDING}
        rules, test = one_rule_replay(ratio, inputs, quiet(ratio, range(10, 61, 5)))
        assert promtool_replay(tmp_path, rules, test)


def test_one_replica_stall_pages_through_the_twin_rule(
    site: Site, tmp_path: Path
) -> None:
    """The exporter to one replica stalls while its twin, fed the same points,
    sends: the per-replica page fires for it, and the whole-Collector page,
    which still sees points leave, does not."""
    inputs = [
        series("otelcol_exporter_sent_metric_points", {**FRONT, "exporter": "otlp_http/prom-a"}, "600x60"),
        series("otelcol_exporter_sent_metric_points", {**FRONT, "exporter": "otlp_http/prom-b"}, "0+600x60"),
        series("otelcol_receiver_accepted_metric_points",
               {**FRONT, "receiver": "otlp", "transport": "grpc"}, "0+600x60"),
    ]  # fmt: skip
    twin = rule_named(site, "CollectorNotSendingToReplica")
    fired = {**FRONT, "exporter": "otlp_http/prom-a", **twin["labels"]}
    firing = [{"exp_labels": fired, "exp_annotations": {
        k: render(v, fired) for k, v in twin["annotations"].items()}}]  # fmt: skip
    checks = [{"eval_time": "30m", "alertname": twin["alert"], "exp_alerts": firing}]
    rules, test = one_rule_replay(twin, inputs, checks)
    assert promtool_replay(tmp_path, rules, test)
    whole = rule_named(site, "CollectorNotSending")
    rules, test = one_rule_replay(whole, inputs, quiet(whole, range(10, 61, 5)))
    assert promtool_replay(tmp_path, rules, test)


def test_one_fast_host_does_not_page_through_the_exporter(
    site: Site, tmp_path: Path
) -> None:
    """Review round 6: a host more than 10 minutes fast gets a permanent 400 at
    every export, so send_failed rises every minute; round 5 paged on any
    failure. Among 1,000 points a second from other hosts, it is a ticket."""
    page = rule_named(site, "CollectorExportFailing")
    inputs = [
        series("otelcol_exporter_sent_metric_points", EXPORTER, "0+60000x60"),
        series("otelcol_exporter_send_failed_metric_points", EXPORTER, "0+40x60"),
    ]
    rules, test = one_rule_replay(page, inputs, quiet(page, range(5, 61, 5)))
    assert promtool_replay(tmp_path, rules, test)
    old = {**page, "expr": rule_named(site, "CollectorExportFailed")["expr"]}
    rules, test = one_rule_replay(old, inputs, quiet(old, range(5, 61, 5)))
    assert not promtool_replay(tmp_path, rules, test)


def heartbeat_group(site: Site) -> dict[str, Any]:
    (group,) = [g for g in rule_groups(site)
                if any(r.get("alert") == "ServiceStoppedPushing" for r in g["rules"])]  # fmt: skip
    return group


@pytest.mark.parametrize(("old", "is_quiet"), [(False, True), (True, False)])
def test_a_finished_batch_job_opens_no_ticket(
    site: Site, tmp_path: Path, old: bool, is_quiet: bool
) -> None:
    """Review round 6: a job's target_info ends with every run; jobs set
    k8s.job.name, which the heartbeat skips (round 5's rule did not)."""
    group = heartbeat_group(site)
    retired, record, alert = group["rules"]
    assert '{k8s_job_name=""}' in record["expr"]
    if old:
        record = {**record, "expr": record["expr"].replace('{k8s_job_name=""}', "")}
    labels = {**NIGHTLY, "k8s_job_name": "nightly-export-29x7q"}
    inputs = [series("target_info", labels, "1x10")]  # one 10-minute run
    test = replay_test(inputs, quiet(alert, range(10, 71, 5)))
    rules = {"groups": [{**group, "rules": [retired, record, alert]}]}
    assert promtool_replay(tmp_path, rules, test) is is_quiet


#: Round 10's heartbeat: seen in the last hour, and not now.
ROUND_10_HEARTBEAT = (
    'group by (job) (last_over_time(target_info{k8s_job_name=""}[1h]))'
    " unless on (job) group by (job) (target_info)"
)


@pytest.mark.parametrize("old", [False, True])
def test_a_silent_service_keeps_its_ticket_open(
    site: Site, tmp_path: Path, old: bool
) -> None:
    """Review round 10, finding 4: round 10's heartbeat looked back an hour, so
    the ticket resolved itself an hour after a service fell silent; the
    recording rule carries the last push forward, and the ticket stays open."""
    group = heartbeat_group(site)
    # The records run first, so the alert reads this evaluation's value.
    _retired, record, alert = group["rules"]
    assert "record" in record and alert["alert"] == "ServiceStoppedPushing"
    rules = [{**alert, "expr": ROUND_10_HEARTBEAT}] if old else group["rules"]
    fired = {"job": CHECKOUT["job"], **alert["labels"]}
    annotations = {k: render(v, fired) for k, v in alert["annotations"].items()}
    firing = [{"exp_labels": fired, "exp_annotations": annotations}]
    inputs = [
        # Checkout pushes until 10m, then falls silent.
        series("target_info", CHECKOUT, "1x2"),
        # Another service keeps pushing: its ticket never opens.
        series("target_info", {"job": "shop/cart", "instance": "shop.cart-1.cart"},
               "1x300"),
    ]  # fmt: skip
    checks = [
        {"eval_time": "10m", "alertname": alert["alert"], "exp_alerts": []},
        {"eval_time": "30m", "alertname": alert["alert"], "exp_alerts": firing},
        {"eval_time": "2h", "alertname": alert["alert"], "exp_alerts": [] if old else firing},
        {"eval_time": "1d", "alertname": alert["alert"], "exp_alerts": [] if old else firing},
    ]  # fmt: skip
    test = replay_test(inputs, checks, interval="5m")
    ok = promtool_replay(tmp_path, {"groups": [{"name": "g", "rules": rules}]}, test)
    assert ok, "the essay's rules keep the ticket open; round 10's rule drops it"


def retired_jobs(rule: dict[str, Any]) -> list[str]:
    """The jobs a retired-pusher rule lists, one label_replace each."""
    return re.findall(
        r'label_replace\(vector\(1\), "job", "([^"]+)", "", ""\)', rule["expr"]
    )


@pytest.mark.parametrize("listed", [True, False])
def test_a_retired_service_leaves_the_ticket_without_the_admin_api(
    site: Site, tmp_path: Path, listed: bool
) -> None:
    """Review round 11, finding 3: the carried-forward heartbeat kept a retired
    service's ticket open for good, and only the admin API, which the flags
    leave off, could delete it. Listing the job in the retired-pusher rule
    drops it from both carry-forward rules, and its ticket never opens; a
    silent service that is not listed still tickets."""
    assert "--web.enable-admin-api" not in block(site, "flags")
    group = heartbeat_group(site)
    retired, record, alert = group["rules"]
    assert retired["record"] == "job:retired_pusher:info"
    (gone,) = retired_jobs(retired)
    for carried in (record, batch_group(site)["rules"][0]):
        assert carried["expr"].endswith("unless on (job) job:retired_pusher:info")
    rules = group["rules"]
    if not listed:  # the list names another job
        rules = [{**retired, "expr": retired["expr"].replace(gone, "shop/other")},
                 record, alert]  # fmt: skip
    labels = {"job": gone, "instance": "shop.legacy-export-1.export"}
    fired = {"job": gone, **alert["labels"]}
    annotations = {k: render(v, fired) for k, v in alert["annotations"].items()}
    firing = [{"exp_labels": fired, "exp_annotations": annotations}]
    inputs = [series("target_info", labels, "1x2")]  # silent from 10m
    checks = [
        {"eval_time": t, "alertname": alert["alert"], "exp_alerts": [] if listed else firing}
        for t in ("30m", "2h", "1d")
    ]  # fmt: skip
    test = replay_test(inputs, checks, interval="5m")
    assert promtool_replay(tmp_path, {"groups": [{"name": "g", "rules": rules}]}, test)


def batch_group(site: Site) -> dict[str, Any]:
    (group,) = [g for g in rule_groups(site)
                if any(r.get("alert") == "BatchJobNotSucceeding" for r in g["rules"])]  # fmt: skip
    return group


#: The round-7 rule: the last success read over an eight-day range.
EIGHT_DAY_RULE = (
    "time() - max by (job) (max_over_time(batch_last_success_timestamp_seconds[8d]))"
    " > 26 * 3600"
)


@pytest.mark.parametrize("old", [False, True])
def test_a_failing_daily_job_keeps_its_ticket_open(
    site: Site, tmp_path: Path, old: bool
) -> None:
    """Review round 7: a pushed success timestamp just stops, so the eight-day
    range let the ticket resolve itself on day nine; the recording rule
    carries the last success forward, and the ticket stays open."""
    group = batch_group(site)
    (alert,) = [r for r in group["rules"] if "alert" in r]
    # The record runs first, so the alert reads this evaluation's value.
    assert group["rules"][-1] is alert and "record" in group["rules"][0]
    rules = [{**alert, "expr": EIGHT_DAY_RULE}] if old else group["rules"]
    fired = {"job": NIGHTLY["job"], **alert["labels"]}
    annotations = {k: render(v, fired) for k, v in alert["annotations"].items()}
    firing = [{"exp_labels": fired, "exp_annotations": annotations}]
    inputs = [
        # The nightly job succeeded once, at 0s, and has failed since.
        series("batch_last_success_timestamp_seconds", NIGHTLY, "0x1"),
        # Another job succeeds every day: its ticket never opens.
        series("batch_last_success_timestamp_seconds",
               {"job": "shop/daily-report", "instance": "shop.daily-report-1.report"},
               " ".join(["0"] + [f"_x287 {d * 86400}" for d in range(1, 31)])),
    ]  # fmt: skip
    checks = [
        {"eval_time": "25h", "alertname": alert["alert"], "exp_alerts": []},
        {"eval_time": "27h", "alertname": alert["alert"], "exp_alerts": firing},
        {"eval_time": "9d", "alertname": alert["alert"], "exp_alerts": [] if old else firing},
        {"eval_time": "30d", "alertname": alert["alert"], "exp_alerts": [] if old else firing},
    ]  # fmt: skip
    test = replay_test(inputs, checks, interval="5m")
    ok = promtool_replay(tmp_path, {"groups": [{"name": "g", "rules": rules}]}, test)
    assert ok, "the essay's rules keep the ticket open; the eight-day rule drops it"


def test_a_success_closes_the_ticket(site: Site, tmp_path: Path) -> None:
    """The carried value is the newest success: a late success resolves it."""
    group = batch_group(site)
    (alert,) = [r for r in group["rules"] if "alert" in r]
    inputs = [series("batch_last_success_timestamp_seconds", NIGHTLY,
                     "0x1 _x334 100800x12")]  # fmt: skip  # succeeds at 28h
    checks = [
        {"eval_time": "27h", "alertname": alert["alert"],
         "exp_alerts": [{"exp_labels": {"job": NIGHTLY["job"], **alert["labels"]},
                         "exp_annotations": {k: render(v, {"job": NIGHTLY["job"]})
                                             for k, v in alert["annotations"].items()}}]},
        {"eval_time": "29h", "alertname": alert["alert"], "exp_alerts": []},
        {"eval_time": "2d", "alertname": alert["alert"], "exp_alerts": []},
    ]  # fmt: skip
    test = replay_test(inputs, checks, interval="5m")
    assert promtool_replay(tmp_path, {"groups": [group]}, test)


@pytest.mark.parametrize(
    ("category", "fires"),
    [("label_name_collision", True), ("histogram_zero_count_non_zero_sum", False),
     ("other", False)],
)  # fmt: skip
def test_only_collisions_open_the_collision_ticket(
    site: Site, tmp_path: Path, category: str, fires: bool
) -> None:
    """Review round 7: 3.14 counts every translation warning, by category
    (storage/remote/otlptranslator/prometheusremotewrite/annotations.go);
    only label_name_collision means two attributes were merged."""
    rule = rule_named(site, "OTLPAttributesCollide")
    labels = {**PROM_A, "category": category}
    fired = {"instance": PROM_A["instance"], **rule["labels"]}
    expected = [{"exp_labels": fired,
                 "exp_annotations": {k: render(v, fired)
                                     for k, v in rule["annotations"].items()}}]  # fmt: skip
    inputs = [
        series("prometheus_api_otlp_translation_warnings_total", labels, "0+5x30")
    ]
    checks = [{"eval_time": "20m", "alertname": rule["alert"],
               "exp_alerts": expected if fires else []}]  # fmt: skip
    rules, test = one_rule_replay(rule, inputs, checks)
    assert promtool_replay(tmp_path, rules, test)


def test_a_fast_clock_is_caught_by_the_host_offset(site: Site, tmp_path: Path) -> None:
    """Review round 6: a host 6 minutes fast pushes data that looks fresh, so
    PushedClockLagging never sees it; node_exporter's offset does."""
    group = clock_group(site)
    lagging = group["rules"][-1]
    test = replay_test([series("target_info", CHECKOUT, "1x60")],
                       quiet(lagging, range(30, 61, 10)))  # fmt: skip
    assert promtool_replay(tmp_path, {"groups": [group]}, test)  # blind: fresh
    skew = rule_named(site, "HostClockSkewed")
    fired = {**NODE, **skew["labels"]}
    annotations = {k: render(v, fired) for k, v in skew["annotations"].items()}
    checks = [{"eval_time": "30m", "alertname": skew["alert"],
               "exp_alerts": [{"exp_labels": fired, "exp_annotations": annotations}]}]  # fmt: skip
    rules, test = one_rule_replay(
        skew, [series("node_timex_offset_seconds", NODE, "360x60")], checks
    )
    assert promtool_replay(tmp_path, rules, test)


@pytest.mark.parametrize(
    "gone",
    [None, "prometheus_remote_storage_samples_total",
     "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
     "prometheus_http_requests_total",
     # Review round 9, finding 5: two more names the remote-write rules read.
     "prometheus_remote_storage_samples_failed_total",
     "prometheus_remote_storage_queue_highest_timestamp_seconds"],
)  # fmt: skip
def test_a_renamed_prometheus_metric_tickets(
    site: Site, tmp_path: Path, gone: str | None
) -> None:
    """Review round 6: Prometheus's own metric names are unstable in 3.x; if one
    the rules read disappears, the guard fires instead of the rules going quiet."""
    rule = rule_named(site, "PrometheusMetricsMissing")
    inputs = [
        pair[1] for pair in PIPELINE
        if pair[1]["series"].startswith("prometheus_")
        and not (gone and pair[1]["series"].startswith(gone + "{"))
    ]  # fmt: skip
    fired = {"job": "prometheus", **rule["labels"]}
    expected = [] if gone is None else [
        {"exp_labels": fired, "exp_annotations": rule["annotations"]}
    ]  # fmt: skip
    checks = [{"eval_time": "25m", "alertname": rule["alert"], "exp_alerts": expected}]
    rules, test = one_rule_replay(rule, inputs, checks)
    assert promtool_replay(tmp_path, rules, test)


def test_scraped_and_pushed_checkout_have_one_identity(
    site: Site, prometheus_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review round 6: the services job kept `job="services"` and the pod IP, so
    a service moved from push to scrape started new series. Now the scraped pod
    and the same pod pushing carry the same job, instance and promoted labels."""
    services = job(prometheus_config, "services")
    (scraped,) = [t for t in scrape_targets(services, SDK_POD)]
    env = kubernetes_env(yaml.safe_load(block(site, "instance-id"))["env"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from opentelemetry.sdk.resources import Resource

    attributes = Resource.create().attributes
    # The compatibility specification's mapping, and Prometheus's promotion.
    pushed = {
        "job": f"{attributes['service.namespace']}/{attributes['service.name']}",
        "instance": attributes["service.instance.id"],
    }
    for attribute in prometheus_config["otlp"]["promote_resource_attributes"]:
        pushed[attribute.replace(".", "_")] = str(attributes[attribute])
    assert scraped == pushed
    # The pod's app label is the service name the pod spec sets.
    assert scraped["job"] == "shop/checkout" == CHECKOUT["job"]
    assert scraped["instance"] == CHECKOUT["instance"]


# NetworkPolicy selection, for the selectors the essay uses (matchLabels only).


def network_policies(site: Site) -> list[dict[str, Any]]:
    docs = list(yaml.safe_load_all(block(site, "network-policy")))
    assert {d["kind"] for d in docs} == {"NetworkPolicy"}
    return docs


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def admitted(policies: list[dict[str, Any]], dst: dict[str, Any],
             src: dict[str, Any], port: int) -> bool:  # fmt: skip
    """Whether Kubernetes admits a connection from pod *src* to pod *dst*: a pod
    no policy selects admits everything; otherwise one rule must allow it. A
    named port is the number of *dst*'s container port of that name."""
    selecting = [
        p for p in policies
        if p["metadata"]["namespace"] == dst["namespace"]
        and matches(p["spec"]["podSelector"], dst["labels"])
        and "Ingress" in p["spec"]["policyTypes"]
    ]  # fmt: skip
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            named = dst.get("ports", {})
            ports = [named.get(e["port"], e["port"]) for e in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            for peer in rule.get("from", []):
                ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
                ns_labels = {"kubernetes.io/metadata.name": src["namespace"]}
                if (
                    ns_sel is None
                    and src["namespace"] != policy["metadata"]["namespace"]
                ):
                    continue
                if ns_sel is not None and not matches(ns_sel, ns_labels):
                    continue
                if pod_sel is not None and not matches(pod_sel, src["labels"]):
                    continue
                return True
    return False


def test_only_pushers_reach_the_front_tier_and_only_it_the_delta_tier(
    site: Site,
) -> None:
    """Review round 6: the front tier's receivers took writes from any pod, and
    the delta tier forwards them with its credential."""
    policies = network_policies(site)
    collector_labels = {
        tier: {"app.kubernetes.io/name": "otel-collector", "app.kubernetes.io/component": tier}
        for tier in ("front", "delta")
    }  # fmt: skip
    # The labels the Prometheus job's relabelling reads from Collector pods.
    collectors = job(yaml.safe_load(block(site, "prometheus")), "otel-collector")
    (kept,) = scrape_targets(collectors, COLLECTOR_POD)
    assert kept["tier"] == "delta"
    front = {"namespace": "observability", "labels": collector_labels["front"]}
    delta = {"namespace": "observability", "labels": collector_labels["delta"]}
    pusher = {
        "namespace": "shop",
        "labels": {"telemetry.example.internal/push": "true"},
    }
    stranger = {"namespace": "shop", "labels": {"app.kubernetes.io/name": "cart"}}
    prometheus = {
        "namespace": "monitoring",
        "labels": {"app.kubernetes.io/name": "prometheus"},
    }
    for port in (4317, 4318):
        assert admitted(policies, front, pusher, port)
        assert not admitted(policies, front, stranger, port)
    assert not admitted(policies, front, pusher, 8888)
    assert admitted(policies, delta, front, 4317)
    assert not admitted(policies, delta, pusher, 4317)
    assert not admitted(policies, delta, stranger, 4317)
    for tier in (front, delta):
        assert admitted(policies, tier, prometheus, 8888)  # the telemetry scrape
    # The receivers these policies guard listen on the ports they name.
    otlp = collector(site, "front")["receivers"]["otlp"]["protocols"]
    assert {int(v["endpoint"].rsplit(":", 1)[1]) for v in otlp.values()} == {4317, 4318}
    # Without the policies the stranger would get in.
    assert admitted([], front, stranger, 4317)


def test_only_monitoring_reads_a_services_metrics_port(site: Site) -> None:
    """Review round 10, finding 6: the scrape-side policy was prose only. It
    admits the monitoring namespace to the named port the services job keeps,
    and nothing else, so application ports need policies of their own."""
    policies = network_policies(site)
    (scrape,) = [p for p in policies if p["metadata"]["namespace"] == "shop"]
    (rule,) = scrape["spec"]["ingress"]
    (entry,) = rule["ports"]
    services = job(yaml.safe_load(block(site, "prometheus")), "services")
    keep = [r for r in services["relabel_configs"]
            if r.get("source_labels") == ["__meta_kubernetes_pod_container_port_name"]]  # fmt: skip
    assert [r["regex"] for r in keep] == [entry["port"]] == ["metrics"]
    checkout = {
        "namespace": "shop",
        "labels": {"app.kubernetes.io/name": "checkout"},
        "ports": {"http": 8080, "otlp-grpc": 4317, "metrics": 9464},  # as SDK_POD
    }
    prometheus = {
        "namespace": "monitoring",
        "labels": {"app.kubernetes.io/name": "prometheus"},
    }
    neighbour = {"namespace": "shop", "labels": {"app.kubernetes.io/name": "cart"}}
    stranger = {
        "namespace": "billing",
        "labels": {"app.kubernetes.io/name": "legacy-billing"},
    }
    assert admitted(policies, checkout, prometheus, 9464)
    assert not admitted(policies, checkout, neighbour, 9464)
    assert not admitted(policies, checkout, stranger, 9464)
    assert not admitted(policies, checkout, prometheus, 8080)  # only the named port
    assert not admitted(policies, checkout, neighbour, 8080)  # needs its own policy
    assert admitted(
        [], checkout, stranger, 9464
    )  # without it, anyone reads target_info


def test_promoted_attributes_are_set_by_the_pod_spec(
    site: Site, prometheus_config: dict[str, Any]
) -> None:
    """Review round 6: round 5 promoted five attributes that nothing set."""
    env = kubernetes_env(yaml.safe_load(block(site, "instance-id"))["env"])
    names = {
        item.split("=", 1)[0] for item in env["OTEL_RESOURCE_ATTRIBUTES"].split(",")
    }
    assert set(prometheus_config["otlp"]["promote_resource_attributes"]) <= names


# Review round 9.


def test_front_tier_enforces_the_cumulative_policy(site: Site) -> None:
    """Finding 1: the front tier announced the policy but enforced nothing.
    Now a filter, before routing, drops delta points from services outside an
    allowlist; cumulative points and gauges never match the condition."""
    front = collector(site, "front")
    pipeline = front["service"]["pipelines"]["metrics"]["processors"]
    assert pipeline.index("filter/delta_policy") < pipeline.index(
        "transform/drop_volatile"
    )
    (condition,) = front["processors"]["filter/delta_policy"]["metric_conditions"]
    m = re.fullmatch(
        r"metric\.aggregation_temporality == AGGREGATION_TEMPORALITY_DELTA\s+"
        r'and not IsMatch\(resource\.attributes\["service\.name"\], "([^"]+)"\)',
        condition.strip(),
    )
    assert m, condition
    allow = re.compile(m.group(1))

    def dropped(temporality: str, service: str | None) -> bool:
        # IsMatch on a missing attribute is false, so an unnamed sender is dropped.
        listed = service is not None and allow.search(service) is not None
        return temporality == "DELTA" and not listed

    assert dropped("DELTA", "checkout") and dropped("DELTA", None)
    assert not dropped("DELTA", "billing-export")
    assert not dropped("DELTA", "canary-delta")  # round 12: the delta canary
    assert dropped("DELTA", "billing-export-v2")  # anchored: not listed
    assert not any(dropped(t, "checkout") for t in ("CUMULATIVE", "UNSPECIFIED"))
    assert "filter/delta_policy" in block(site, "collector-front")
    assert "only deltas pass the stateful delta tier" in prose(site).lower()


def inhibition(site: Site) -> dict[str, Any]:
    return yaml.safe_load(block(site, "inhibit"))


def matchers(items: list[str]) -> dict[str, tuple[str, str]]:
    pairs = [re.fullmatch(r'(\w+) (=~?) "([^"]*)"', item) for item in items]
    assert all(pairs), items
    return {m.group(1): (m.group(2), m.group(3)) for m in pairs if m}


def matched(rule_matchers: dict[str, tuple[str, str]], labels: dict[str, str]) -> bool:
    """Alertmanager matching: `=` is equality, `=~` a fully anchored regex."""
    for name, (op, value) in rule_matchers.items():
        have = labels.get(name, "")
        if not (have == value if op == "=" else re.fullmatch(value, have)):
            return False
    return True


def muted(site: Site, source: dict[str, str], target: dict[str, str]) -> bool:
    for rule in inhibition(site)["inhibit_rules"]:
        if (
            matched(matchers(rule["source_matchers"]), source)
            and matched(matchers(rule["target_matchers"]), target)
            and all(source.get(k) == target.get(k) for k in rule["equal"])
        ):
            return True
    return False


#: The alerts on one exporter that a dead replica sets off, and so mutes.
EXPORTER_ALERTS = (
    "CollectorNotSendingToReplica",
    "CollectorExportFailing",
    "CollectorExportFailed",
    "CollectorQueueDropping",
    "CollectorQueueDroppedPoints",
    "CollectorQueueFilling",
)


def test_inhibition_mutes_the_dead_replicas_exporter_only(
    site: Site, prometheus_config: dict[str, Any], tmp_path: Path
) -> None:
    """Finding 10 of round 8: the prose said to inhibit CollectorNotSending
    behind PrometheusPeerDown but gave no rule. Round 9, finding 4: the rule
    muted the exporters to both replicas, so a silent stall towards the healthy
    one went unpaged; now one rule per replica mutes only the dead one's.
    Round 10, finding 2: a dead replica fills its exporter's queue, so the
    queue and failure alerts on that exporter are muted too; CollectorRefusing
    and the whole-Collector stall, which name no exporter, are not."""
    alerts = {r["alert"]: r for r in alert_rules(site)}
    assert "cluster" in prometheus_config["global"]["external_labels"]
    cluster = {"cluster": "prod-eu-1"}
    for dead, alive in (("a", "b"), ("b", "a")):
        down = {"alertname": "PrometheusPeerDown", **cluster, "job": "prometheus",
                "instance": f"prometheus-{dead}.monitoring.svc:9090"}  # fmt: skip
        for tier in ("front", "delta"):
            for name in EXPORTER_ALERTS:
                assert "exporter" in alerts[name]["expr"], name
                stalled = {"alertname": name, **cluster, "tier": tier,
                           "instance": "10.1.0.7:8888"}  # fmt: skip
                to_dead = {**stalled, "exporter": f"otlp_http/prom-{dead}"}
                assert muted(site, down, to_dead), name
                assert not muted(
                    site, down, {**stalled, "exporter": f"otlp_http/prom-{alive}"}
                )
                # Another cluster's outage mutes nothing here.
                elsewhere = {**down, "cluster": "prod-us-1"}
                assert not muted(site, elsewhere, to_dead), name
            for name in ("CollectorRefusing", "CollectorNotSending"):
                assert "exporter)" not in alerts[name]["expr"], name
                target = {"alertname": name, **cluster, "tier": tier,
                          "instance": "10.1.0.7:8888", "receiver": "otlp"}  # fmt: skip
                assert not muted(site, down, target), name
    # The exporters the rules name are the ones the tiers configure.
    for tier in ("front", "delta"):
        assert set(replica_exporters(collector(site, tier))) == {
            "otlp_http/prom-a", "otlp_http/prom-b"
        }  # fmt: skip
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed")
    path = tmp_path / "alertmanager.yml"
    path.write_text(block(site, "inhibit"))
    done = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    path.write_text(
        block(site, "inhibit").replace("equal: [cluster]", "equal: cluster")
    )
    bad = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True
    )
    assert bad.returncode != 0


def test_scraped_target_info_matches_the_pushed_one(
    site: Site, prometheus_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 9: scraped, target_info carries service_* copies and its k8s_*
    labels clash with the target's and become exported_k8s_*; the services
    job's metric relabelling drops them, so it matches what OTLP writes."""
    services = job(prometheus_config, "services")
    (target,) = scrape_targets(services, SDK_POD)
    env = kubernetes_env(yaml.safe_load(block(site, "instance-id"))["env"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from opentelemetry.sdk.resources import Resource

    attributes = {k: str(v) for k, v in Resource.create().attributes.items()}
    exposed = {k.replace(".", "_"): v for k, v in attributes.items()}
    # Without honor_labels, an exposed label that clashes with a target label
    # is kept as exported_<name>, and the target's label wins.
    scraped = {(f"exported_{k}" if k in target else k): v for k, v in exposed.items()}
    scraped.update(target)
    assert {"exported_k8s_namespace_name", "service_name"} <= set(scraped)
    relabelled = relabel(scraped, services["metric_relabel_configs"])
    identifying = {"service.name", "service.namespace", "service.instance.id"}
    pushed = {
        k.replace(".", "_"): v for k, v in attributes.items() if k not in identifying
    }
    pushed |= {"job": target["job"], "instance": target["instance"]}
    assert relabelled == pushed


TRANSLATION_ROW = re.compile(r"\| `([^`]+)`, `([^`]+)`, ([\w ]+) \| `([^`]+)`")


def test_translation_table_matches_the_python_exporter_except_ratio(site: Site) -> None:
    """Finding 3: the translation table. The Python SDK's Prometheus exporter
    follows the same unit and _total rules, but adds no _ratio, as the prose says."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    source = (Path(__file__).parents[2] / "docs" / f"{DOC}.md").read_text()
    rows = TRANSLATION_ROW.findall(source)
    assert len(rows) == 5, rows
    registry = prometheus_client.CollectorRegistry()
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("names")
    for name, unit, kind, _ in rows:
        if kind == "histogram":
            meter.create_histogram(name, unit=unit).record(1)
        elif kind == "counter":
            meter.create_counter(name, unit=unit).add(1)
        elif kind == "UpDownCounter":
            meter.create_up_down_counter(name, unit=unit).add(1)
        else:
            meter.create_gauge(name, unit=unit).set(0.5)
    registry.register(reader._collector)
    served = prometheus_client.generate_latest(registry).decode()
    names = {
        line.split("{")[0].split(" ")[0]
        for line in served.splitlines()
        if line and not line.startswith("#")
    }
    provider.shutdown()
    for _, unit, kind, expected in rows:
        if unit == "1" and kind == "gauge":
            assert expected.endswith("_ratio")
            assert expected not in names and expected.removesuffix("_ratio") in names
        else:
            assert expected in names, (expected, sorted(names))
    assert "adds no `_ratio`" in source


def test_alert_table_lists_every_rule_by_severity(site: Site) -> None:
    """Finding 10: a one-line rationale per alert, grouped by hop."""
    source = (Path(__file__).parents[2] / "docs" / f"{DOC}.md").read_text()
    table = source.split("The alert rules, by hop:", 1)[1].split("```", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.strip().splitlines()[2:]]
    assert len(rows) == 6
    listed: dict[str, str] = {}
    for _, pages, _, tickets in rows:
        for name in re.findall(r"`(\w+)`", pages):
            listed[name] = listed.get(name, "") + "page"
        for name in re.findall(r"`(\w+)`", tickets):
            listed[name] = listed.get(name, "") + "ticket"
    # The right-hand column lists everything that pages no person.
    severities = {
        r["alert"]: "page" if r["labels"]["severity"] == "page" else "ticket"
        for r in alert_rules(site)
    }
    assert listed == severities


# -- Review round 12: symptom alerts -------------------------------------------

CANARY_C = {
    "job": "observability/canary-cumulative",
    "instance": "observability.canary-c-5f7.canary",
}
CANARY_D = {
    "job": "observability/canary-delta",
    "instance": "observability.canary-d-9k2.canary",
}


def canary_replay(site: Site, rule: dict[str, Any], *, stops: bool, at: str,
                  fires: bool) -> dict[str, Any]:  # fmt: skip
    """The cumulative canary pushes every minute until 10m, then (if *stops*)
    nothing; the delta canary keeps pushing."""
    fired = {"job": CANARY_C["job"], **rule["labels"]}
    expected = [{
        "exp_labels": fired,
        "exp_annotations": {k: render(v, fired) for k, v in rule["annotations"].items()},
    }] if fires else []  # fmt: skip
    return {
        "rule_files": ["canary.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                series("canary_heartbeats_total", CANARY_C, "0+4x10" if stops else "0+4x60"),
                series("canary_heartbeats_total", CANARY_D, "0+4x60"),
            ],
            "alert_rule_test": [{"eval_time": at, "alertname": rule["alert"], "exp_alerts": expected}],
        }],
    }  # fmt: skip


def run_canary(site: Site, tmp_path: Path, rule: dict[str, Any], **kw: Any) -> bool:
    groups = {"groups": [{"name": "symptoms", "rules": [rule]}]}
    (tmp_path / "canary.yml").write_text(yaml.safe_dump(groups))
    (tmp_path / "replay.yml").write_text(
        yaml.safe_dump(canary_replay(site, rule, **kw))
    )
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    return result.returncode == 0


@pytest.mark.parametrize(
    ("stops", "at", "fires"),
    [(False, "25m", False), (True, "12m", False), (True, "14m", False),
     (True, "16m", True), (True, "40m", True)],
)  # fmt: skip
def test_the_canary_pages_when_pushes_stop_reaching_a_replica(
    site: Site, tmp_path: Path, stops: bool, at: str, fires: bool
) -> None:
    """Finding 2: a stopped canary pages after three minutes plus the `for`
    (16m, its last push at 10m) and keeps paging once its series has left the
    lookback (40m); a live one, or a short gap, does not."""
    rule = rule_named(site, "PushedCanaryMissing")
    assert rule["labels"]["severity"] == "page"
    assert run_canary(site, tmp_path, rule, stops=stops, at=at, fires=fires)


def test_without_absent_the_canary_alert_would_resolve(
    site: Site, tmp_path: Path
) -> None:
    """The age test alone goes quiet once the last sample leaves the lookback."""
    rule = rule_named(site, "PushedCanaryMissing")
    naive = {**rule, "expr": rule["expr"].split(" or ")[0]}
    assert run_canary(site, tmp_path, naive, stops=True, at="40m", fires=False)
    assert not run_canary(site, tmp_path, naive, stops=True, at="40m", fires=True)


def test_both_canary_paths_cross_the_tiers_they_watch(site: Site) -> None:
    """The delta canary must be allowlisted, or the front tier drops it."""
    rule = rule_named(site, "PushedCanaryMissing")
    for canary in (CANARY_C, CANARY_D):
        assert (
            f'absent(canary_heartbeats_total{{job="{canary["job"]}"}})' in rule["expr"]
        )
    front = collector(site, "front")
    (condition,) = front["processors"]["filter/delta_policy"]["metric_conditions"]
    assert "canary-delta" in condition


def test_the_watchdog_always_fires_and_reaches_the_switch(
    site: Site, tmp_path: Path
) -> None:
    rule = rule_named(site, "Watchdog")
    groups = {"groups": [{"name": "symptoms", "rules": [rule]}]}
    (tmp_path / "w.yml").write_text(yaml.safe_dump(groups))
    fired = dict(rule["labels"])
    replay_ = {
        "rule_files": ["w.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [series("up", PROM_A, "1x10")],
            "alert_rule_test": [{"eval_time": "5m", "alertname": "Watchdog", "exp_alerts": [{
                "exp_labels": fired, "exp_annotations": rule["annotations"]}]}],
        }],
    }  # fmt: skip
    (tmp_path / "replay.yml").write_text(yaml.safe_dump(replay_))
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    am = yaml.safe_load(block(site, "inhibit"))
    (route,) = [
        r for r in am["route"]["routes"] if 'alertname = "Watchdog"' in r["matchers"]
    ]
    (receiver,) = [r for r in am["receivers"] if r["name"] == route["receiver"]]
    assert receiver["webhook_configs"][0]["url"].startswith("https://")
    assert am["route"]["receiver"] != route["receiver"]  # never the on-call route


def test_probes_authenticate_as_a_web_config_user(site: Site) -> None:
    """Finding 8: web.yml guards the health endpoints, so the probes send a
    basic-auth header over HTTPS for a user that web.yml defines."""
    probes = yaml.safe_load(block(site, "probes"))
    users = yaml.safe_load(block(site, "web-config"))["basic_auth_users"]
    assert yaml.safe_load(block(site, "web-config"))["tls_server_config"]
    paths = set()
    for kind in ("readinessProbe", "livenessProbe"):
        get = probes[kind]["httpGet"]
        assert get["scheme"] == "HTTPS" and get["port"] == 9090
        paths.add(get["path"])
        ((header),) = get["httpHeaders"]
        assert header["name"] == "Authorization"
        scheme, _, token = header["value"].partition(" ")
        assert scheme == "Basic"
        user = base64.b64decode(token).decode().partition(":")[0]
        assert user in users, user
    assert paths == {"/-/ready", "/-/healthy"}


# -- Round 13 -------------------------------------------------------------------


def alertmanager(site: Site) -> dict[str, Any]:
    return yaml.safe_load(block(site, "inhibit"))


def watchdog_route(config: dict[str, Any]) -> dict[str, Any]:
    (route,) = [r for r in config["route"]["routes"]
                if 'alertname = "Watchdog"' in r["matchers"]]  # fmt: skip
    return route


def resend_every(route: dict[str, Any], parent: dict[str, Any]) -> int:
    """How often Alertmanager re-sends a firing group, in seconds: only when
    the group flushes, every group_interval (default 5m), so repeat_interval
    (default 4h) is rounded up to a multiple of it (alertmanager #3370, #3389,
    #3552). A child route inherits what it does not set."""

    def setting(name: str, default: str) -> int:
        return seconds(route.get(name, parent.get(name, default)))

    group, repeat = setting("group_interval", "5m"), setting("repeat_interval", "4h")
    return math.ceil(repeat / group) * group


@pytest.mark.parametrize("pinned", [True, False])
def test_the_watchdog_pings_as_often_as_its_summary_says(
    site: Site, tmp_path: Path, pinned: bool
) -> None:
    """Review round 13, finding 1: repeat_interval: 1m alone re-sends every
    5m, the default group_interval; the route pins group_interval to 1m, so
    the dead-man's switch gets a ping a minute, as the Watchdog's summary says.
    amtool checks the file and routes a Watchdog alert to the switch."""
    config = alertmanager(site)
    route = watchdog_route(config)
    if not pinned:  # the round-13 route
        route.pop("group_interval")
    every = resend_every(route, config["route"])
    assert (every == 60) is pinned, every
    assert "every minute" in rule_named(site, "Watchdog")["annotations"]["summary"]
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed")
    checked = subprocess.run([amtool, "check-config", "am.yml"], cwd=tmp_path,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    routed = subprocess.run(
        [amtool, "config", "routes", "test", "--config.file=am.yml", "alertname=Watchdog"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert routed.stdout.split() == [route["receiver"]], routed.stdout + routed.stderr
    assert "group_interval" in prose(site) and "five minutes by default" in prose(site)


def inventory_group(site: Site) -> dict[str, Any]:
    (group,) = [g for g in rule_groups(site)
                if any(r.get("alert") == "ExpectedServiceMissing" for r in g["rules"])]  # fmt: skip
    return group


def inventory_rules(site: Site) -> dict[str, Any]:
    """The inventory with the records it reads, in the essay's group order."""
    wanted = {
        "ExpectedServiceMissing",
        "ServiceStoppedPushing",
        "BatchJobNotSucceeding",
    }
    groups = [g for g in rule_groups(site)
              if any(r.get("alert") in wanted for r in g["rules"])]  # fmt: skip
    return {"groups": groups}


@pytest.mark.parametrize("seen", ["never", "scraped", "pushed", "succeeded"])
def test_the_inventory_tickets_a_listed_job_that_never_arrives(
    site: Site, tmp_path: Path, seen: str
) -> None:
    """Review round 13, finding 2: the heartbeat learned a job only from its
    first push, so a service wrong from day one never fired. The inventory
    lists what should exist; a listed job that is neither scraped, nor pushing,
    nor succeeding tickets, and one seen any of those ways does not."""
    listed = retired_jobs(inventory_group(site)["rules"][0])
    assert {"shop/checkout", "shop/ledger-sync", "shop/billing-export"} <= set(listed)
    labels = {"job": "shop/billing-export", "instance": "shop.billing-export-1.export"}
    inputs = [
        series("up", {"job": job_, "instance": f"{job_}-0"}, "1x60")
        for job_ in listed
        if job_ != labels["job"]
    ]
    inputs += {
        "never": [],
        "scraped": [series("up", labels, "1x60")],
        "pushed": [series("target_info", labels, "1x60")],
        "succeeded": [series("batch_last_success_timestamp_seconds",
                             {**labels, "k8s_job_name": "billing-export-1"}, "60x60")],
    }[seen]  # fmt: skip
    alert = rule_named(site, "ExpectedServiceMissing")
    fired = {"job": labels["job"], **alert["labels"]}
    firing = [{"exp_labels": fired, "exp_annotations": {
        k: render(v, fired) for k, v in alert["annotations"].items()}}]  # fmt: skip
    checks = [{"eval_time": t, "alertname": alert["alert"],
               "exp_alerts": firing if seen == "never" else []}
              for t in ("20m", "50m")]  # fmt: skip
    assert promtool_replay(tmp_path, inventory_rules(site), replay_test(inputs, checks))
    # And promtool would notice the opposite claim.
    wrong = [{**c, "exp_alerts": [] if seen == "never" else firing} for c in checks]
    assert not promtool_replay(
        tmp_path, inventory_rules(site), replay_test(inputs, wrong)
    )


@pytest.mark.parametrize("old", [False, True])
def test_a_scraped_service_scaled_to_zero_opens_no_ticket(
    site: Site, tmp_path: Path, old: bool
) -> None:
    """Review round 13, finding 2: after the services job's relabelling a
    scraped target_info is identical to a pushed one, so the heartbeat took
    scraped services in and ticketed each one scaled to zero. A scrape also
    writes `up` for the same job and instance, which the record now excludes."""
    group = heartbeat_group(site)
    retired, record, alert = group["rules"]
    excluded = "unless on (job, instance) up)"
    assert excluded in record["expr"]
    if old:
        record = {**record, "expr": record["expr"].replace(" " + excluded, ")")}
    cart = {"job": "shop/cart", "instance": "shop.cart-1.cart"}
    inputs = [
        series("target_info", cart, "1x2"),
        series("up", cart, "1x2"),
    ]  # gone at 10m
    fired = {"job": cart["job"], **alert["labels"]}
    firing = [{"exp_labels": fired, "exp_annotations": {
        k: render(v, fired) for k, v in alert["annotations"].items()}}]  # fmt: skip
    checks = [{"eval_time": t, "alertname": alert["alert"],
               "exp_alerts": firing if old else []} for t in ("30m", "2h")]  # fmt: skip
    rules = {"groups": [{**group, "rules": [retired, record, alert]}]}
    assert promtool_replay(tmp_path, rules, replay_test(inputs, checks, interval="5m"))


def test_the_services_job_needs_both_the_annotation_and_the_port(
    site: Site, prometheus_config: dict[str, Any]
) -> None:
    """Review round 13, finding 7: the prose named only the port; a pod with
    the port but no annotation, or the annotation but no `metrics` port, is
    not scraped. The prose names both, and the inventory is what catches it."""
    services = job(prometheus_config, "services")
    meta = {
        k: v for k, v in SDK_POD[0].items() if k.startswith("__meta_kubernetes_pod_")
    }
    assert len(scrape_targets(services, SDK_POD)) == 1
    unannotated = [{k: v for k, v in t.items()
                    if k != "__meta_kubernetes_pod_annotation_prometheus_io_scrape"}
                   for t in SDK_POD]  # fmt: skip
    assert scrape_targets(services, unannotated) == []
    unnamed = [{**t, "__meta_kubernetes_pod_container_port_name": "http-metrics"}
               for t in SDK_POD]  # fmt: skip
    assert scrape_targets(services, unnamed) == [] and meta
    text = prose(site)
    assert 'prometheus.io/scrape: "true"' in text and "port named metrics" in text
    assert "only the inventory catches" in text


def exporters_with_queues(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every exporter helper in a tier, the load balancer's OTLP template too."""
    found = {}
    for name, settings in config["exporters"].items():
        if kind(name) == "load_balancing":
            found[name + ".protocol.otlp"] = settings["protocol"]["otlp"]
        else:
            found[name] = settings
    return found


@pytest.mark.parametrize("tier", ["front", "delta"])
def test_every_exporter_pins_batching_off(site: Site, tier: str) -> None:
    """Review round 13, finding 3: the batching-migration RFC at v0.159.0 turns
    exporter batching on by default in v0.166.0; the load balancer builds one
    OTLP exporter per converter from its template, which had no pin, so it
    would merge services' delta requests on their way to the delta tier."""
    found = exporters_with_queues(collector(site, tier))
    assert found
    for name, settings in found.items():
        assert settings["sending_queue"]["batch"] == {"enabled": False}, (tier, name)
    text = prose(site)
    assert "v0.166.0" in text and "v0.171.0" not in text and "February 2027" not in text


def test_the_batching_check_would_catch_an_unpinned_template(site: Site) -> None:
    front = collector(site, "front")
    del front["exporters"]["load_balancing"]["protocol"]["otlp"]["sending_queue"]
    template = exporters_with_queues(front)["load_balancing.protocol.otlp"]
    assert "sending_queue" not in template


def test_a_backlog_inside_the_queue_arrives_within_the_hour(site: Site) -> None:
    """Review round 13, finding 5: a point arrives as old as its queue wait
    plus its retries. With the queue filled at the stated rate, the oldest
    request has waited queue_size / rate, then retries up to max_elapsed_time:
    40 minutes here, inside the hour Prometheus accepts in order; the prose
    says that a longer outage ends in 400s."""
    for tier in ("front", "delta"):
        for name, settings in replica_exporters(collector(site, tier)).items():
            wait = settings["sending_queue"]["queue_size"] / queue_rate(tier)
            retries = seconds(settings["retry_on_failure"]["max_elapsed_time"])
            assert wait + retries < 3600, (tier, name)
    text = prose(site)
    assert "as old as its queue wait plus its retries" in text
    assert "expect 400s, not a full replay" in text


def test_the_namespace_wide_policy_warns_on_its_first_line(site: Site) -> None:
    """Review round 13, finding 6: readers copy appendix blocks; the policy
    that selects every pod starts with the warning, and the prose orders the
    rollout."""
    text = block(site, "network-policy")
    documents = text.split("\n---\n")
    (wide,) = [d for d in documents if "podSelector: {}" in d]
    assert wide.lstrip().startswith("# APPLY LAST")
    assert "policies first" in prose(site)


def test_thanos_and_skyscanner_say_what_their_sources_say(site: Site) -> None:
    """Review round 13, findings 4 and 9: the feature-flag page says older
    Prometheus versions cannot read XOR2 and that tools such as the Thanos
    sidecar might not support it yet; the Skyscanner post's base-image sketch
    sets OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE to DELTA."""
    text = prose(site)
    assert "the Thanos sidecar may not yet" in text
    assert "Thanos sidecar cannot" not in text
    assert 'the preference set to "DELTA"' in text
    assert "since July 2026" not in text


# -- Review round 14 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "fires"), [(0, False), (1, False), (2, True), (3, True)]
)
def test_one_dead_collector_tickets_and_half_a_tier_pages(
    site: Site, tmp_path: Path, down: int, fires: bool
) -> None:
    """Round 14, finding 2: one dead pod of a scaled, stateless tier is a cause
    with no user-visible symptom, so CollectorDown tickets; the page is
    CollectorTierDegraded, which fires once half of a tier's pods are down
    (here two of a front tier of four)."""
    assert rule_named(site, "CollectorDown")["labels"]["severity"] == "ticket"
    rule = rule_named(site, "CollectorTierDegraded")
    assert rule["labels"]["severity"] == "page"
    pods = [{**FRONT, "instance": f"10.1.0.{20 + i}:8888"} for i in range(4)]
    inputs = [series("up", pod, ("0" if i < down else "1") + "x40")
              for i, pod in enumerate(pods)]  # fmt: skip
    fired = {"job": "otel-collector", "tier": "front", **rule["labels"]}
    expected = [{"exp_labels": fired, "exp_annotations": {
        k: render(v, fired) for k, v in rule["annotations"].items()}}] if fires else []  # fmt: skip
    checks = [{"eval_time": "20m", "alertname": rule["alert"], "exp_alerts": expected}]
    rules, test = one_rule_replay(rule, inputs, checks)
    assert promtool_replay(tmp_path, rules, test)


def test_meta_alerts_ticket_and_the_peer_page_says_what_to_do(site: Site) -> None:
    """Round 14, finding 2 and 3: the missing-metrics guards are meta-alerts
    (the Watchdog covers a dead rule path), so they ticket; PrometheusPeerDown
    pages because its queues count down to global push failure, and its
    annotation gives the countdown and the action the prose decides."""
    for name in ("CollectorMetricsMissing", "PrometheusMetricsMissing"):
        assert rule_named(site, name)["labels"]["severity"] == "ticket"
    peer = rule_named(site, "PrometheusPeerDown")
    assert peer["labels"]["severity"] == "page"
    description = " ".join(peer["annotations"]["description"].split())
    # Round 17, finding 1: the healthy replica keeps receiving; the failure
    # is sender-visible 503s and retries that fill the healthy side.
    assert "The healthy replica still gets every push" in description
    assert "senders see 503s and retry" in description
    assert (
        "fail every push" not in description and "every push fails" not in description
    )
    assert "fail every push" not in block(site, "alerts")
    assert "remove this replica's exporter from both tiers and reload" in description
    # The countdown is the queue the configuration sets, at the stated rate.
    for tier in ("front", "delta"):
        for exporter in replica_exporters(collector(site, tier)).values():
            assert exporter["sending_queue"]["queue_size"] / queue_rate(tier) / 60 >= 20
    text = prose(site)
    assert "remove the dead replica's exporters" in text


def test_only_collectors_the_peer_and_grafana_reach_prometheus(site: Site) -> None:
    """Round 14, finding 1: the OTLP route is on Prometheus's own port 9090, so
    "a leaked password is not enough" needs a policy on the Prometheus pods. A
    pusher holding the Collectors' password cannot reach 9090 directly."""
    policies = network_policies(site)
    prometheus = {
        "namespace": "monitoring",
        "labels": {"app.kubernetes.io/name": "prometheus"},
    }
    allowed = [
        {"namespace": "observability",
         "labels": {"app.kubernetes.io/name": "otel-collector", "app.kubernetes.io/component": tier}}
        for tier in ("front", "delta")
    ] + [prometheus, {"namespace": "monitoring", "labels": {"app.kubernetes.io/name": "grafana"}}]  # fmt: skip
    refused = [
        {"namespace": "shop", "labels": {"telemetry.example.internal/push": "true"}},
        {"namespace": "shop", "labels": {"app.kubernetes.io/name": "cart"}},
        # A pod labelled like a Collector in another namespace is not one.
        {"namespace": "shop", "labels": {"app.kubernetes.io/name": "otel-collector"}},
        {
            "namespace": "monitoring",
            "labels": {"app.kubernetes.io/name": "node-exporter"},
        },
    ]
    for src in allowed:
        assert admitted(policies, prometheus, src, 9090), src
        assert not admitted(policies, prometheus, src, 9091), src
    for src in refused:
        assert not admitted(policies, prometheus, src, 9090), src
    assert admitted([], prometheus, refused[0], 9090)  # without it, the pusher gets in
    # Port 9090 is where both tiers push and the peer scrapes.
    for tier in ("front", "delta"):
        for name, exporter in collector(site, tier)["exporters"].items():
            if name.startswith("otlp_http/prom-"):
                assert ".monitoring.svc:9090/" in exporter["endpoint"]
    assert "A leaked password is then not enough on its own." in prose(site)


# -- Review round 15 -----------------------------------------------------------


def test_whole_request_failure_is_dated_to_3_7(site: Site) -> None:
    """Round 15, finding 1: before 3.7 (commit 979aea1d49, #16951) the OTLP
    handler logged translation errors as warnings, wrote what translated and
    answered 200; only rejected samples failed the request. The prose dates
    each whole-request claim, and the version table has the older behaviour."""
    text = prose(site)
    assert "Since 3.7, one metric it cannot translate fails the whole request" in text
    assert (
        "Since 3.7, by default, Prometheus fails the whole request with a 500" in text
    )
    assert "Before 3.7, Prometheus dropped only the delta metric" in text
    assert "Since 3.7, below -4 it fails the whole request" in text
    assert "since 3.7 so does one delta or untranslatable metric" in text
    rows = [row for row in text.split("Prometheus before 3.7")[1:]]
    assert rows and "3.5 long-term-support release" in rows[0][:120]
    assert "logged as a warning" in rows[0][:400] and "200" in rows[0][:400]
    # The undated claim of round 15 is gone.
    assert "By default Prometheus fails the whole request" not in text


def test_the_scraped_marker_is_stamped_at_the_first_missed_scrape(site: Site) -> None:
    """Round 15, finding 6: the scrape loop waits just over two intervals before
    writing end-of-run markers, and stamps them at the first missed scrape. The
    promtool example's marker sits one interval after pod a's last sample."""
    scraped = yaml.safe_load(block(site, "staleness-test"))["tests"][0]
    step = seconds(scraped["interval"])
    values = scraped["input_series"][0]["values"].split()
    assert values[-1] == "stale"
    samples = int(values[0].split("x")[1]) + 1  # '40x39' is 40 samples
    last_sample, marker = (samples - 1) * step, samples * step
    assert (last_sample, marker) == (585, 600)  # 9m45s, then the marker at 10m
    text = prose(site)
    assert (
        "waits just over two intervals, then stamps the marker at the first missed scrape"
        in text
    )
    assert "within about two scrape intervals" in text
    assert "drop the series at once" not in text


def test_the_zero_sample_flag_leaves_the_pinned_scrape_order(
    site: Site, prometheus_config: dict[str, Any]
) -> None:
    """Round 15, finding 5: created-timestamp-zero-ingestion changes the
    default scrape_protocols to put PrometheusProto first. The configuration
    already scrapes native histograms, whose default order (3.14 reference) it
    pins, so the flag changes nothing there."""
    native_order = ["PrometheusProto", "OpenMetricsText1.0.0", "OpenMetricsText0.0.1",
                    "PrometheusText1.0.0", "PrometheusText0.0.4"]  # fmt: skip
    g = prometheus_config["global"]
    assert g["scrape_native_histograms"] is True
    assert g["scrape_protocols"] == native_order
    assert not any(
        "scrape_protocols" in job for job in prometheus_config["scrape_configs"]
    )
    words = block(site, "flags")
    assert "created-timestamp-zero-ingestion" in words
    assert "The zero-sample flag acts on scrapes too." in prose(site)


def test_a_partition_fires_peer_down_for_both_replicas(
    site: Site, tmp_path: Path
) -> None:
    """Round 15, finding 2: each replica scrapes its peer, so a partition
    between them makes each report the other down. Both PrometheusPeerDown
    alerts fire together, so a controller removing the exporter of every
    replica reported down would remove both; the prose keeps a person."""
    rule = rule_named(site, "PrometheusPeerDown")
    inputs = [series("up", PROM_B, "0x20"), series("up", PROM_A, "0x20")]
    expected = [
        {"exp_labels": {**labels, **rule["labels"]},
         "exp_annotations": {k: render(v, labels) for k, v in rule["annotations"].items()}}
        for labels in (PROM_A, PROM_B)
    ]  # fmt: skip
    checks = [{"eval_time": "10m", "alertname": rule["alert"], "exp_alerts": expected}]
    assert promtool_replay(tmp_path, *one_rule_replay(rule, inputs, checks))
    # The replay can fail: one replica down is one alert, not two.
    one = [series("up", PROM_B, "0x20"), series("up", PROM_A, "1x20")]
    assert not promtool_replay(tmp_path, *one_rule_replay(rule, one, checks))
    description = " ".join(rule["annotations"]["description"].split())
    assert "not only cut off from its peer" in description
    text = prose(site)
    assert "a controller obeying both alerts would cut both" in text
    assert "no way around the coupling" in text


@pytest.mark.parametrize(
    ("what", "says"),
    [
        ("collector-front", "Checked only structurally"),
        ("collector-delta", "Checked only structurally"),
        ("prometheus", "no 3.14 binary has loaded it"),
        ("alerts", "2.x query engine"),
        ("network-policy", "not on a cluster"),
        ("probes", "Checked only structurally"),
    ],
)
def test_each_partly_checked_block_says_how_it_was_checked(
    site: Site, what: str, says: str
) -> None:
    """Round 15, finding 7: a block that no current binary has loaded says so
    in its opening comment lines, next to the example itself."""
    head = []
    for line in block(site, what).splitlines():
        if not line.startswith("#"):
            break
        head.append(line)
    assert "Checked" in " ".join(head) and says in " ".join(head), head


def test_the_worked_example_is_labelled_a_composite(site: Site) -> None:
    """Round 15, finding 4: the checkout incident is invented, and the prose
    says so; the public report it rests on is told with its course."""
    text = prose(site)
    assert "This case is a composite" in text
    assert "noticed five minutes late" in text
    assert "labelled an enhancement and closed as inactive" in text


# -- Review round 17 -----------------------------------------------------------


@pytest.mark.parametrize(("queued", "fires"), [(200, False), (300, True), (1000, True)])
def test_the_queue_countdown_pages_on_its_own(
    site: Site, tmp_path: Path, queued: int, fires: bool
) -> None:
    """Round 17, finding 2: a queue to one replica fills whenever its OTLP
    route fails with a retryable error, also while the peer still scrapes it
    as up (WAL replay: /metrics is not readiness-gated in 3.14, the OTLP route
    is). So CollectorQueueFilling pages at a quarter full, whatever the cause,
    and PrometheusPeerDown, which names the commonest cause, mutes it."""
    rule = rule_named(site, "CollectorQueueFilling")
    assert rule["labels"]["severity"] == "page"
    inputs = [
        series("otelcol_exporter_queue_size", EXPORTER, f"0 {queued}x30"),
        series("otelcol_exporter_queue_capacity", EXPORTER, "1000x30"),
    ]
    fired = {**EXPORTER, **rule["labels"]}
    expected = [{"exp_labels": fired, "exp_annotations": {
        k: render(v, fired) for k, v in rule["annotations"].items()}}] if fires else []  # fmt: skip
    checks = [{"eval_time": "10m", "alertname": rule["alert"], "exp_alerts": expected}]
    rules, test = one_rule_replay(rule, inputs, checks)
    assert promtool_replay(tmp_path, rules, test)
    assert "CollectorQueueFilling" in EXPORTER_ALERTS
    text = prose(site)
    assert "/metrics has no readiness check" in text
    assert "its OTLP route answers 503" in text
    assert "a queue filling, whatever its cause" in text


def test_a_slow_for_would_leave_the_countdown_unpaged(
    site: Site, tmp_path: Path
) -> None:
    """The replay above can fail: with round 17's old threshold (half full for
    ten minutes) a queue at 30 % never pages."""
    rule = {**rule_named(site, "CollectorQueueFilling"), "for": "10m"}
    rule["expr"] = rule["expr"].replace("> 0.25", "> 0.5")
    inputs = [
        series("otelcol_exporter_queue_size", EXPORTER, "0 300x30"),
        series("otelcol_exporter_queue_capacity", EXPORTER, "1000x30"),
    ]
    fired = {**EXPORTER, **rule["labels"]}
    expected = [{"exp_labels": fired, "exp_annotations": {
        k: render(v, fired) for k, v in rule["annotations"].items()}}]  # fmt: skip
    checks = [{"eval_time": "20m", "alertname": rule["alert"], "exp_alerts": expected}]
    rules, test = one_rule_replay(rule, inputs, checks)
    assert not promtool_replay(tmp_path, rules, test)


def test_a_replica_outage_mutes_the_converters_retry_duplicates(site: Site) -> None:
    """Round 17, finding 5: while a replica is down, a full delta-tier queue
    fails requests back to the front tier, whose retries reach a converter
    that has already added those deltas, so it drops them as out of order
    (the broken-pipeline replay shows DeltaConversionFailing firing on an
    out-of-order counter). PrometheusPeerDown mutes the ticket for either
    replica, in its own cluster only; nothing else does."""
    cluster = {"cluster": "prod-eu-1"}
    target = {"alertname": "DeltaConversionFailing", **cluster, **COLLECTOR}
    for dead in ("a", "b"):
        down = {"alertname": "PrometheusPeerDown", **cluster, "job": "prometheus",
                "instance": f"prometheus-{dead}.monitoring.svc:9090"}  # fmt: skip
        assert muted(site, down, target)
        assert not muted(site, {**down, "cluster": "prod-us-1"}, target)
    other = {"alertname": "CollectorDown", **cluster, "job": "otel-collector"}
    assert not muted(site, other, target)
    assert FIRES["DeltaConversionFailing"][0] == COLLECTOR
    text = prose(site)
    assert "the converter rightly refuses to count it twice" in text


def test_the_ha_failure_is_sender_errors_then_retry_load(site: Site) -> None:
    """Round 17, finding 1: the fan-out still delivers to the healthy replica;
    a full queue gives senders 503s, their retries are fanned out again and
    fill the healthy queue and memory, and loss comes later."""
    text = prose(site)
    assert "The healthy replica still gets every request" in text
    assert "every sender sees a failure and retries" in text
    assert "memory_limiter refuses, which stops both paths" in text
    assert "not on queue_size alone" in text
    assert "every request fails back to its sender" not in text


def test_the_live_reader_sees_the_scraped_gauge_high_briefly(site: Site) -> None:
    """Round 17, finding 6: the end-of-run marker lands just over two scrape
    intervals after the last scrape, so a live reader sees the doubled sum for
    about half a minute at 15 s, not five minutes."""
    text = prose(site)
    assert "a live reader such as the autoscaler sees 80 until the marker lands" in text
    assert "about half a minute at 15 s, against five minutes pushed" in text
    assert 2 * 15 < 60 < 5 * 60


def test_deltas_are_rejected_by_default_and_spanmetrics_fixed_at_source(
    site: Site,
) -> None:
    """Round 17, finding 4: the real delta producer in the cited Skyscanner
    post is a spanmetrics connector in scaled gateways; its streams carry the
    spans' resource, so several replicas would write one stream, which a
    converter refuses as out of order. The default is rejection; only the
    canary and placeholder single-writer producers are allowlisted."""
    text = prose(site)
    assert "spanmetrics connector set to delta" in text
    assert "So reject deltas by default" in text
    assert "without one, delete it and its canary" in text
    condition = collector(site, "front")["processors"]["filter/delta_policy"][
        "metric_conditions"
    ][0]
    assert "canary-delta" in condition

"""The examples of "Prometheus and OpenTelemetry: How They Fit Together" do
what the prose says.

Checked with real tools:

* The staleness example is a ``promtool test rules`` file; ``promtool`` runs it
  against the real PromQL engine (scraped: the sum stays 40; pushed: it reads
  80 until the lookback expires), and a test shows the run fails when an
  expectation is wrong.
* The transfer-failure alerts pass ``promtool check rules``, and a
  ``promtool test rules`` replay shows each alert firing on a broken pipeline
  and none on a healthy one.
* ``promtool`` confirms the prose about real ``increase()``: no result from one
  sample, and 18 (not 12) from a zero at 0 s and 12 at 40 s.
* The Prometheus configuration passes ``promtool check config --syntax-only``
  once the keys that the installed promtool predates are removed; the test
  names exactly which keys those are and checks them against the option names
  of the Prometheus 3.14 configuration reference instead.
* The OpenTelemetry Python SDK exports once more on shutdown and never sets the
  ``NoRecordedValue`` flag, as the prose says.
* The bucket-index code is compared with the SDK's exponential mapping.
* The PromQL blocks are parsed with ``promql-parser`` and their structure is
  asserted.

Checked structurally (no Collector binary is installable here): the two
Collector configurations use component types and options of current contrib
builds, and the reference design keeps the properties the review asked for:
one path into the long-term store, every OTLP batch to both HA replicas with
its own persistent queue, no stateful component in the load-balanced tier, and
native histograms on remote write. The diagram draws the same design.
"""

from __future__ import annotations

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
from pathlib import Path
from typing import Any

import opentelemetry.exporter.otlp.proto.common
import opentelemetry.sdk
import promql_parser
import pytest
import yaml
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping import (
    exponent_mapping,
    logarithm_mapping,
)
from opentelemetry.sdk.metrics.export import (
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
    # 40 just after; avg is not doubled; last_over_time(...[2m]) ends it sooner.
    assert expected[("sum(queue_depth)", "14m50s")] == 80
    assert expected[("sum(queue_depth)", "15m10s")] == 40
    assert expected[("avg(queue_depth)", "12m")] == 40
    assert expected[("sum(last_over_time(queue_depth[2m]))", "12m30s")] == 40
    assert all(
        case["exp_samples"][0]["value"] == 40 for case in scraped["promql_expr_test"]
    )
    assert "last_over_time(queue_depth[2m])" in prose(site)


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


def test_quantile_queries_read_classic_then_native(site: Site) -> None:
    classic, native = [
        promql_parser.parse(line)
        for line in block(site, "quantiles").splitlines()
        if line.strip()
    ]
    assert "_bucket" in classic.prettify() and "by (le)" in classic.prettify()
    assert "_bucket" not in native.prettify() and " by " not in native.prettify()


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
}
#: Attributes that change on every restart: never promoted, removed in the Collector.
VOLATILE = {"container.id", "process.pid"}
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


def test_promotion_is_a_short_allowlist_of_fixed_attributes(
    prometheus_config: dict[str, Any],
) -> None:
    otlp = prometheus_config["otlp"]
    assert not otlp.get("promote_all_resource_attributes", False)
    promoted = set(otlp["promote_resource_attributes"])
    assert len(promoted) == 5  # "This essay promotes five"
    assert promoted <= GUIDE_LIST  # attributes fixed for an instance's life
    assert not promoted & VOLATILE
    # job and instance already carry the identifying attributes.
    assert not promoted & {"service.name", "service.namespace", "service.instance.id"}


def test_prometheus_is_one_replica_of_a_deduplicated_pair(
    prometheus_config: dict[str, Any],
) -> None:
    labels = prometheus_config["global"]["external_labels"]
    # The Mimir HA tracker's default label names, sent with every remote write.
    assert labels["__replica__"] == "a" and labels["cluster"]
    assert len(prometheus_config["remote_write"]) == 1
    assert prometheus_config["rule_files"]  # the transfer alerts live here


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

ALERT_REPLAY = """
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - name: a broken pipeline
    interval: 1m
    input_series:
      - series: 'otelcol_exporter_send_failed_metric_points_total{job="k",instance="d0",exporter="otlp_http/prom-b"}'
        values: '0+600x30'
      - series: 'otelcol_exporter_enqueue_failed_metric_points_total{job="k",instance="d0",exporter="otlp_http/prom-b"}'
        values: '0+100x30'
      - series: 'otelcol_exporter_queue_size{job="k",instance="d0",exporter="otlp_http/prom-b"}'
        values: '900x30'
      - series: 'otelcol_exporter_queue_capacity{job="k",instance="d0",exporter="otlp_http/prom-b"}'
        values: '1000x30'
      - series: 'prometheus_http_requests_total{instance="b",handler="/api/v1/otlp/v1/metrics",code="400"}'
        values: '0+50x30'
      - series: 'target_info{job="shop/checkout",instance="shop.checkout-7d9.app"}'
        values: '1x5'
    alert_rule_test:
      - {eval_time: 25m, alertname: CollectorExportFailing, exp_alerts: [{exp_labels: {job: k, instance: d0, exporter: otlp_http/prom-b}}]}
      - {eval_time: 25m, alertname: CollectorQueueDropping, exp_alerts: [{exp_labels: {job: k, instance: d0, exporter: otlp_http/prom-b}}]}
      - {eval_time: 25m, alertname: CollectorQueueFilling, exp_alerts: [{exp_labels: {job: k, instance: d0, exporter: otlp_http/prom-b}}]}
      - {eval_time: 25m, alertname: PrometheusRejectingOTLP, exp_alerts: [{exp_labels: {instance: b, code: "400"}}]}
      - {eval_time: 25m, alertname: CheckoutStoppedPushing, exp_alerts: [{exp_labels: {job: shop/checkout}}]}
  - name: a healthy pipeline
    interval: 1m
    input_series:
      - series: 'otelcol_exporter_send_failed_metric_points_total{job="k",instance="d0",exporter="otlp_http/prom-b"}'
        values: '0x30'
      - series: 'otelcol_exporter_enqueue_failed_metric_points_total{job="k",instance="d0",exporter="otlp_http/prom-b"}'
        values: '0x30'
      - series: 'otelcol_exporter_queue_size{job="k",instance="d0",exporter="otlp_http/prom-b"}'
        values: '3x30'
      - series: 'otelcol_exporter_queue_capacity{job="k",instance="d0",exporter="otlp_http/prom-b"}'
        values: '1000x30'
      - series: 'prometheus_http_requests_total{instance="b",handler="/api/v1/otlp/v1/metrics",code="200"}'
        values: '0+50x30'
      - series: 'target_info{job="shop/checkout",instance="shop.checkout-7d9.app"}'
        values: '1x30'
    alert_rule_test:
      - {eval_time: 25m, alertname: CollectorExportFailing, exp_alerts: []}
      - {eval_time: 25m, alertname: CollectorQueueDropping, exp_alerts: []}
      - {eval_time: 25m, alertname: CollectorQueueFilling, exp_alerts: []}
      - {eval_time: 25m, alertname: PrometheusRejectingOTLP, exp_alerts: []}
      - {eval_time: 25m, alertname: CheckoutStoppedPushing, exp_alerts: []}
"""


def test_promtool_accepts_the_alerts(site: Site, tmp_path: Path) -> None:
    (tmp_path / "alerts.yml").write_text(block(site, "alerts"))
    result = promtool_run("check", "rules", "alerts.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 rules found" in result.stdout


def test_alerts_fire_on_a_broken_pipeline_only(site: Site, tmp_path: Path) -> None:
    (tmp_path / "alerts.yml").write_text(block(site, "alerts"))
    (tmp_path / "replay.yml").write_text(ALERT_REPLAY)
    result = promtool_run("test", "rules", "replay.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_replay_would_catch_a_silent_pipeline(site: Site, tmp_path: Path) -> None:
    (tmp_path / "alerts.yml").write_text(block(site, "alerts"))
    wrong = ALERT_REPLAY.replace(
        'alertname: PrometheusRejectingOTLP, exp_alerts: [{exp_labels: {instance: b, code: "400"}}]',
        "alertname: PrometheusRejectingOTLP, exp_alerts: []",
    )
    assert wrong != ALERT_REPLAY
    (tmp_path / "replay.yml").write_text(wrong)
    assert promtool_run("test", "rules", "replay.yml", cwd=tmp_path).returncode != 0


def test_alerts_watch_the_metrics_the_prose_names(site: Site) -> None:
    rules = yaml.safe_load(block(site, "alerts"))["groups"][0]["rules"]
    exprs = " ".join(rule["expr"] for rule in rules)
    for metric in (
        "otelcol_exporter_send_failed_metric_points_total",
        "otelcol_exporter_enqueue_failed_metric_points_total",
        "otelcol_exporter_queue_size",
        'handler="/api/v1/otlp/v1/metrics"',
        "target_info",
    ):
        assert metric in exprs


# -- The Collector configurations -------------------------------------------------

#: Component types of current otelcol-contrib builds, under their new names.
RECEIVERS = {"otlp", "prometheus"}
PROCESSORS = {"memory_limiter", "transform", "delta_to_cumulative"}
EXPORTERS = {"otlp_http", "load_balancing", "prometheus_remote_write"}
EXTENSIONS = {"file_storage"}
STATEFUL = {"prometheus", "delta_to_cumulative"}
OPTIONS = {
    "memory_limiter": {"check_interval", "limit_percentage", "spike_limit_percentage"},
    "transform": {"error_mode", "metric_statements"},
    "delta_to_cumulative": {"max_stale", "max_streams"},
    "load_balancing": {"routing_key", "protocol", "resolver"},
    "otlp_http": {"endpoint", "sending_queue", "retry_on_failure", "timeout"},
    "file_storage": {"directory", "timeout"},
}


def collector(site: Site, tier: str) -> dict[str, Any]:
    config = yaml.safe_load(block(site, f"collector-{tier}"))
    assert isinstance(config, dict)
    return config


def kind(component_id: str) -> str:
    return component_id.split("/", 1)[0]


@pytest.mark.parametrize("tier", ["front", "delta"])
def test_collector_pipeline_is_consistent(site: Site, tier: str) -> None:
    config = collector(site, tier)
    pipelines = config["service"]["pipelines"]
    assert list(pipelines) == ["metrics"]
    pipeline = pipelines["metrics"]
    for section, allowed in (
        ("receivers", RECEIVERS),
        ("processors", PROCESSORS),
        ("exporters", EXPORTERS),
    ):
        defined = set(config[section])
        assert set(pipeline[section]) == defined, section
        assert {kind(c) for c in defined} <= allowed, section
        for component, settings in config[section].items():
            if kind(component) in OPTIONS:
                assert set(settings or {}) <= OPTIONS[kind(component)], component
    assert pipeline["processors"][0] == "memory_limiter"  # first, as advised
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
    components = [*front["receivers"], *front["processors"], *front["exporters"]]
    assert not {kind(c) for c in components} & STATEFUL
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


def test_delta_tier_fans_out_to_both_replicas(site: Site) -> None:
    """Finding 2: every batch to each HA replica, each with its own queue."""
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
    hosts, storages, directories = set(), set(), set()
    for settings in exporters.values():
        base = settings["endpoint"]
        # otlp_http appends /v1/metrics; Prometheus serves /api/v1/otlp/v1/metrics.
        assert re.fullmatch(r"http://[^/]+:9090/api/v1/otlp", base), base
        hosts.add(base.split("/")[2])
        storage = settings["sending_queue"]["storage"]
        storages.add(storage)
        directories.add(delta["extensions"][storage]["directory"])
        # Retry longer than the 5m default, but inside the 30m out-of-order window.
        assert 300 < seconds(settings["retry_on_failure"]["max_elapsed_time"]) < 1800
    assert len(hosts) == len(storages) == len(directories) == 2
    assert {h.split(".")[0] for h in hosts} == {"prometheus-a", "prometheus-b"}


def test_the_out_of_order_window_bounds_the_retries(
    site: Site, prometheus_config: dict[str, Any]
) -> None:
    window = seconds(prometheus_config["storage"]["tsdb"]["out_of_order_time_window"])
    for settings in collector(site, "delta")["exporters"].values():
        assert seconds(settings["retry_on_failure"]["max_elapsed_time"]) < window


def test_diagram_draws_the_configured_design(site: Site) -> None:
    graphs = [n for n in doctree(site).findall() if n.tagname == "graphviz"]
    assert len(graphs) == 1
    edges = set(re.findall(r"(\w+) -> (\w+)", graphs[0]["code"]))
    assert {("delta", "proma"), ("delta", "promb")} <= edges  # fan-out
    assert {("proma", "lts"), ("promb", "lts")} <= edges  # Prometheus writes the store
    assert {src for src, dst in edges if dst == "lts"} == {"proma", "promb"}
    assert ("front", "delta") in edges and ("app", "front") in edges
    assert not {
        src for src, dst in edges if src == "legacy" and dst in {"front", "delta"}
    }

"""The examples of "Prometheus and OpenTelemetry: How They Fit Together" do
what the prose says.

* The two Python models run as printed, and their printed output is the output
  written in their trailing comments.
* The bucket-index code is checked against the exponential-histogram mapping
  of the real OpenTelemetry Python SDK, and against the offset rule of the
  OpenTelemetry/Prometheus compatibility specification.
* The PromQL blocks are parsed with ``promql-parser`` (a port of the Prometheus
  parser) and their structure is asserted: the join, the ``info()`` call, the
  classic and the native quantile.
* The Prometheus configuration is checked against the option names of the
  Prometheus 3.14 configuration reference, and against the histogram rule the
  essay warns about; the command line against the flags and feature names that
  ``prometheus --help`` lists in that release.
* The Collector configuration is checked for a consistent pipeline built from
  component types that current contrib builds accept, in the order the prose
  describes.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import re
import shlex
from typing import Any

import promql_parser
import pytest
import yaml
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping import (
    exponent_mapping,
    logarithm_mapping,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

from conftest import Site, named_block

DOC = "essays/observability/prometheus-and-opentelemetry"
SLUG = "prometheus-and-opentelemetry"


def block(site: Site, what: str) -> str:
    return named_block(site, DOC, f"{SLUG}-{what}")


def run(code: str) -> tuple[dict[str, Any], list[str]]:
    """Execute *code*; return its namespace and the lines it printed."""
    namespace: dict[str, Any] = {"__name__": "essay_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<essay>", "exec"), namespace)
    return namespace, out.getvalue().splitlines()


def trailing_comments(code: str) -> list[str]:
    """The expected output written as ``# ...`` lines after the last print."""
    lines = code.rstrip().splitlines()
    expected = []
    while lines and lines[-1].startswith("# "):
        expected.insert(0, lines.pop()[2:])
    return expected


def inline_comments(code: str) -> list[str]:
    """What each ``print(...)  # value ...`` line says it prints (first word)."""
    found = []
    for line in code.splitlines():
        if line.startswith("print(") and "  # " in line:
            found.append(line.split("  # ", 1)[1].split()[0].rstrip(":,"))
    return found


# -- The staleness model ------------------------------------------------------


def test_staleness_model_prints_what_its_comments_say(site: Site) -> None:
    code = block(site, "staleness-model")
    _, printed = run(code)
    assert printed == trailing_comments(code)


def test_pushed_gauges_double_count_until_the_lookback_expires(site: Site) -> None:
    ns, _ = run(block(site, "staleness-model"))
    total, scraped, pushed = (
        ns["total"],
        [ns["scraped_a"], ns["scraped_b"]],
        [ns["pushed_a"], ns["pushed_b"]],
    )
    last_push_of_a = ns["pushed_a"][-1][0]
    assert last_push_of_a == 540
    # Scraped: the stale marker ends pod a at once, so the sum never doubles.
    assert all(total(scraped, t) == 40 for t in range(570, 901, 5))
    # Pushed: pod a lingers until its last sample is a full lookback old.
    doubled = [t for t in range(560, 901, 5) if total(pushed, t) == 80]
    assert doubled[0] == 560 and doubled[-1] == last_push_of_a + ns["LOOKBACK"] - 5
    # "About four and a half minutes after the pod exits" (it exits at 570 s).
    assert (last_push_of_a + ns["LOOKBACK"] - 570) / 60 == 4.5


def test_the_lookback_window_is_left_open(site: Site) -> None:
    ns, _ = run(block(site, "staleness-model"))
    instant = ns["instant"]
    assert instant([(0, 7)], 299) == 7
    assert instant([(0, 7)], 300) is None  # Prometheus 3: the boundary is excluded
    assert instant([(0, 7), (10, ns["STALE"])], 11) is None


# -- The first increment ------------------------------------------------------


def test_first_increment_model_prints_what_its_comments_say(site: Site) -> None:
    code = block(site, "first-increment")
    _, printed = run(code)
    assert printed == inline_comments(code) == ["None", "12"]


def test_increase_model_counts_rises_and_resets(site: Site) -> None:
    ns, _ = run(block(site, "first-increment"))
    increase = ns["increase"]
    assert increase([(0, 5), (15, 9), (30, 3), (45, 4)]) == 4 + 3 + 1
    assert increase([(0, 0), (15, 0)]) == 0


# -- Histogram bucket indexes -------------------------------------------------


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
    aggregation = ExponentialBucketHistogramAggregation()
    assert aggregation._max_scale == 20
    assert aggregation._max_size == 160


# -- PromQL --------------------------------------------------------------------


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
    text = block(site, "info")
    expr = promql_parser.parse(text)
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


# -- The Prometheus configuration ---------------------------------------------

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
SCRAPE_CONFIG = {
    "job_name", "scrape_interval", "scrape_timeout", "scrape_protocols",
    "static_configs", "kubernetes_sd_configs", "relabel_configs",
    "metric_relabel_configs", "metrics_path", "scheme", "honor_labels",
    "honor_timestamps", "scrape_native_histograms",
    "always_scrape_classic_histograms", "convert_classic_histograms_to_nhcb",
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
TSDB = {"out_of_order_time_window", "retention", "stale_series_compaction_threshold"}
#: Attributes the essay calls volatile: they must never be promoted.
VOLATILE = {"container.id", "process.pid", "k8s.pod.uid"}


@pytest.fixture
def prometheus_config(site: Site) -> dict[str, Any]:
    config = yaml.safe_load(block(site, "prometheus"))
    assert isinstance(config, dict)
    return config


def test_prometheus_config_uses_only_documented_options(
    prometheus_config: dict[str, Any],
) -> None:
    assert set(prometheus_config) <= TOP_LEVEL
    assert set(prometheus_config["global"]) <= GLOBAL
    for job in prometheus_config["scrape_configs"]:
        assert set(job) <= SCRAPE_CONFIG, job
    assert set(prometheus_config["otlp"]) <= OTLP
    assert prometheus_config["otlp"]["translation_strategy"] in TRANSLATION_STRATEGIES
    assert set(prometheus_config["storage"]["tsdb"]) <= TSDB
    assert set(prometheus_config["storage"]["exemplars"]) == {"max_exemplars"}


def test_native_scraping_keeps_classic_buckets(
    site: Site, prometheus_config: dict[str, Any]
) -> None:
    """The essay's warning: with native scraping on, classic buckets of
    histograms exposed both ways are ingested only if
    always_scrape_classic_histograms is true, and the classic quantile query
    in the essay needs them."""
    effective = prometheus_config["global"]
    for job in prometheus_config["scrape_configs"]:
        native = job.get(
            "scrape_native_histograms", effective.get("scrape_native_histograms", False)
        )
        classic = job.get(
            "always_scrape_classic_histograms",
            effective.get("always_scrape_classic_histograms", False),
        )
        assert not native or classic, job["job_name"]
    assert "_bucket" in block(site, "quantiles")


def test_promotion_is_a_short_stable_allowlist(
    prometheus_config: dict[str, Any],
) -> None:
    otlp = prometheus_config["otlp"]
    assert not otlp.get("promote_all_resource_attributes", False)
    promoted = set(otlp["promote_resource_attributes"])
    assert promoted and len(promoted) <= 8
    assert not promoted & VOLATILE
    # job and instance already carry the identifying attributes.
    assert not promoted & {"service.name", "service.namespace", "service.instance.id"}


def test_prometheus_config_rebuilds_the_guarantees(
    prometheus_config: dict[str, Any],
) -> None:
    assert prometheus_config["storage"]["tsdb"]["out_of_order_time_window"] == "30m"
    labels = prometheus_config["global"]["external_labels"]
    # The Mimir HA tracker's default label names, and a remote write to use them.
    assert {"cluster", "__replica__"} <= set(labels)
    assert prometheus_config["remote_write"][0]["url"].startswith("https://")
    relabel = prometheus_config["scrape_configs"][1]["relabel_configs"][0]
    assert relabel["action"] == "keep" and relabel["regex"] == "true"


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


def test_command_line_uses_real_flags_and_features(site: Site) -> None:
    words = shlex.split(block(site, "flags").replace("\\\n", " "))
    assert words[0] == "prometheus"
    options = dict(w.split("=", 1) if "=" in w else (w, "") for w in words[1:])
    assert set(options) <= FLAGS
    features = options["--enable-feature"].split(",")
    assert set(features) <= FEATURES
    # What the prose relies on: exemplars and start-timestamp zero samples.
    assert {"exemplar-storage", "created-timestamp-zero-ingestion"} <= set(features)
    assert "--web.enable-otlp-receiver" in options


# -- The Collector configuration -----------------------------------------------

#: Component types a current otelcol-contrib build accepts under these names.
RECEIVERS = {"otlp", "prometheus"}
PROCESSORS = {"memory_limiter", "transform", "deltatocumulative"}
EXPORTERS = {"otlp_http", "prometheus_remote_write"}


@pytest.fixture
def collector(site: Site) -> dict[str, Any]:
    config = yaml.safe_load(block(site, "collector"))
    assert isinstance(config, dict)
    return config


def kind(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def test_collector_pipeline_is_consistent(collector: dict[str, Any]) -> None:
    pipeline = collector["service"]["pipelines"]["metrics"]
    for section, allowed in (
        ("receivers", RECEIVERS),
        ("processors", PROCESSORS),
        ("exporters", EXPORTERS),
    ):
        defined = set(collector[section])
        assert set(pipeline[section]) == defined, section
        assert {kind(c) for c in defined} <= allowed, section


def test_collector_pipeline_order_matches_the_prose(collector: dict[str, Any]) -> None:
    processors = collector["service"]["pipelines"]["metrics"]["processors"]
    assert processors[0] == "memory_limiter"  # first, as the Collector advises
    assert processors.index("transform/drop_volatile") < processors.index(
        "deltatocumulative"
    )
    statements = collector["processors"]["transform/drop_volatile"]["metric_statements"]
    deleted = {
        m.group(1)
        for s in statements
        if (m := re.fullmatch(r'delete_key\(resource\.attributes, "([^"]+)"\)', s))
    }
    assert deleted == {"process.pid", "container.id"}


def test_collector_endpoints_match_prometheus(collector: dict[str, Any]) -> None:
    otlp = collector["receivers"]["otlp"]["protocols"]
    assert otlp["grpc"]["endpoint"].endswith(":4317")
    assert otlp["http"]["endpoint"].endswith(":4318")
    base = collector["exporters"]["otlp_http/prometheus"]["endpoint"]
    # otlp_http appends /v1/metrics; Prometheus serves /api/v1/otlp/v1/metrics.
    assert base + "/v1/metrics" == "http://prometheus:9090/api/v1/otlp/v1/metrics"
    remote = collector["exporters"]["prometheus_remote_write/longterm"]
    assert remote["resource_to_telemetry_conversion"]["enabled"] is False
    scrape = collector["receivers"]["prometheus"]["config"]["scrape_configs"]
    assert [job["job_name"] for job in scrape] == ["billing-legacy"]
    assert "$" not in yaml.safe_dump(scrape)  # nothing for the Collector to expand

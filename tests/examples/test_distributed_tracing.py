"""The examples of "Distributed Tracing: A Practical Guide" do what the prose says.

The Python examples run against the real OpenTelemetry SDK with an in-memory
exporter; the shell examples are applied as environment variables to a real
SDK; the two collector configurations are parsed and checked against the
options the collector documents, and the tail-sampling policies are evaluated
on synthetic traces with the decision rule the processor documents. The
storage table is recomputed from the shared worked example.
"""

from __future__ import annotations

import pickle
import random
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from docutils import nodes
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
)

from conftest import Site, named_block

DOC = "essays/observability/distributed-tracing"


# -- helpers -------------------------------------------------------------------


def recording_tracer() -> tuple[trace.Tracer, InMemorySpanExporter]:
    """A tracer of its own provider, so no test touches the global one."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("shop.checkout", "2.14.1"), exporter


def run_example(site: Site, name: str) -> tuple[dict[str, Any], InMemorySpanExporter]:
    """Execute a Python block; point its module-level ``tracer`` at a recorder."""
    namespace: dict[str, Any] = {"__name__": f"example_{name.replace('-', '_')}"}
    exec(compile(named_block(site, DOC, name), name, "exec"), namespace)
    tracer, exporter = recording_tracer()
    namespace["tracer"] = tracer
    return namespace, exporter


def exports(site: Site, name: str) -> dict[str, str]:
    """The ``export NAME="value"`` lines of a shell block."""
    found = {}
    for line in named_block(site, DOC, name).splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            key, _, value = words[1].partition("=")
            found[key] = value
    assert found, f"{name}: no export lines"
    return found


def config(site: Site, name: str) -> dict[str, Any]:
    loaded = yaml.safe_load(named_block(site, DOC, name))
    assert isinstance(loaded, dict)
    return loaded


def random_trace_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


# -- propagation through Kafka headers -----------------------------------------


@dataclass
class FakeRecord:
    topic: str
    key: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class FakeProducer:
    sent: list[FakeRecord] = field(default_factory=list)

    def send(self, topic: str, key: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.sent.append(FakeRecord(topic, key, headers))


def test_kafka_context_travels_in_headers_and_the_consumer_links_back(
    site: Site,
) -> None:
    ns, exporter = run_example(site, "distributed-tracing-kafka")
    producer = FakeProducer()

    ns["publish"](producer, "order-42")
    [record] = producer.sent
    names = [k for k, _ in record.headers]
    assert "traceparent" in names
    assert all(isinstance(v, bytes) for _, v in record.headers)

    ns["handle"](record)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    sent, processed = spans["publish order.placed"], spans["process order.placed"]
    assert sent.kind is SpanKind.PRODUCER and processed.kind is SpanKind.CONSUMER

    version, trace_id, parent_id, flags = (
        dict(record.headers)["traceparent"].decode().split("-")
    )
    assert (version, trace_id, parent_id) == (
        "00",
        f"{sent.context.trace_id:032x}",
        f"{sent.context.span_id:016x}",
    )
    assert int(flags, 16) & 0x01, "the sampled bit"
    # As the essay says, the Python SDK also sets Level 2's random-ID bit.
    assert flags == "03"
    # The consumer starts its own trace (a new root) and links to the producer.
    assert processed.parent is None
    assert processed.context.trace_id != sent.context.trace_id
    [link] = processed.links
    assert link.context.trace_id == sent.context.trace_id
    assert link.context.span_id == sent.context.span_id


# -- manual span: declined cards are not errors ----------------------------------


class Psp:
    def __init__(self, outcome: BaseException | None) -> None:
        self.outcome = outcome

    def charge(self, order_id: str, amount_cents: int) -> str:
        if self.outcome is not None:
            raise self.outcome
        return "ch_1"


def test_manual_span_marks_only_faults_as_errors(site: Site) -> None:
    ns, exporter = run_example(site, "distributed-tracing-manual-span")
    charge = ns["charge_card"]

    assert charge(Psp(None), "order-1", 1999) == "ch_1"
    with pytest.raises(ns["CardDeclined"]):
        charge(Psp(ns["CardDeclined"]("insufficient funds")), "order-2", 1999)
    with pytest.raises(TimeoutError):
        charge(Psp(TimeoutError("psp timed out")), "order-3", 1999)

    ok, declined, fault = exporter.get_finished_spans()
    assert ok.attributes["app.payment.outcome"] == "charged"
    assert ok.status.status_code is StatusCode.UNSET

    assert declined.attributes["app.order.id"] == "order-2"
    assert declined.attributes["app.payment.outcome"] == "declined"
    assert declined.status.status_code is StatusCode.UNSET
    assert not declined.events, "a declined card must not record an exception"

    assert fault.status.status_code is StatusCode.ERROR
    assert fault.status.description == "TimeoutError"
    [event] = fault.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "TimeoutError"


def test_without_the_two_flags_a_declined_card_would_be_an_error() -> None:
    """Why the example turns the defaults off: the API's defaults fail the span."""
    tracer, exporter = recording_tracer()
    with pytest.raises(ValueError), tracer.start_as_current_span("charge_card"):
        raise ValueError("declined")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


# -- environment configuration ----------------------------------------------------


def test_auto_instrumentation_environment_limits_attribute_length(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = exports(site, "distributed-tracing-auto-instrumentation")
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4317")  # OTLP/gRPC port
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("INSERT orders") as span:
        span.set_attribute("db.query.text", "x" * 200_000)
    [finished] = exporter.get_finished_spans()
    assert finished.resource.attributes["service.name"] == env["OTEL_SERVICE_NAME"]
    limit = int(env["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"])
    assert len(finished.attributes["db.query.text"]) == limit == 4096


def test_head_sampling_environment_keeps_five_percent_of_roots_and_follows_parents(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = exports(site, "distributed-tracing-head-sampling")
    assert env["OTEL_PROPAGATORS"].split(",") == ["tracecontext", "baggage"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    provider = TracerProvider()
    description = provider.sampler.get_description()
    assert description.startswith("ParentBased{root:TraceIdRatioBased{0.05}")

    tracer = provider.get_tracer("t")
    roots = 20_000
    kept = 0
    for _ in range(roots):
        with tracer.start_as_current_span("root") as span:
            kept += span.is_recording()
    assert 0.043 < kept / roots < 0.057

    def child_recorded(flags: int) -> bool:
        parent = SpanContext(
            trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
            span_id=0x00F067AA0BA902B7,
            is_remote=True,
            trace_flags=TraceFlags(flags),
        )
        ctx = trace.set_span_in_context(NonRecordingSpan(parent))
        token = otel_context.attach(ctx)
        try:
            with tracer.start_as_current_span("child") as span:
                return span.is_recording()
        finally:
            otel_context.detach(token)

    assert child_recorded(0x01) is True
    assert child_recorded(0x00) is False


# -- consistent probability sampling ----------------------------------------------


def test_adjusted_counts_match_the_specification_table(site: Site) -> None:
    ns: dict[str, Any] = {}
    exec(named_block(site, DOC, "distributed-tracing-adjusted-count"), ns)
    adjusted = ns["adjusted_count"]
    # Values from the TraceState probability-sampling specification's table.
    assert adjusted("ot=th:fd70a4") == pytest.approx(100.00009536752259, rel=1e-12)
    assert adjusted("ot=th:e666") == pytest.approx(9.99938968568813, rel=1e-12)
    assert adjusted("ot=th:c") == 4
    assert adjusted("ot=th:0") == 1
    assert adjusted("rojo=00f067aa0ba902b7,ot=rv:abcdef01234567;th:8") == 2
    assert adjusted("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE") is None
    assert adjusted("") is None


def test_consistent_decisions_nest_and_keep_the_configured_share(site: Site) -> None:
    ns: dict[str, Any] = {}
    exec(named_block(site, DOC, "distributed-tracing-adjusted-count"), ns)
    threshold, keep = ns["threshold"], ns["keep"]
    one_percent, ten_percent = threshold("ot=th:fd70a4"), threshold("ot=th:e666")
    rng = random.Random(1)
    ids = [random_trace_id(rng) for _ in range(50_000)]
    kept_1 = {t for t in ids if keep(t, one_percent)}
    kept_10 = {t for t in ids if keep(t, ten_percent)}
    assert kept_1 <= kept_10, "a higher rate must keep a superset"
    assert 0.008 < len(kept_1) / len(ids) < 0.012
    assert 0.095 < len(kept_10) / len(ids) < 0.105


# -- tail sampling tier ---------------------------------------------------------------

#: Options the tail sampling processor documents (its README and config.go).
TAIL_SAMPLING_OPTIONS = {
    "policies",
    "decision_wait",
    "num_traces",
    "expected_new_traces_per_sec",
    "decision_cache",
    "sample_on_first_match",
    "drop_pending_traces_on_shutdown",
}
POLICY_TYPES = {
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "trace_state",
    "trace_flags",
    "rate_limiting",
    "bytes_limiting",
    "span_count",
    "boolean_attribute",
    "ottl_condition",
    "and",
    "drop",
    "composite",
}


@dataclass
class FakeTrace:
    trace_id: str
    path: str
    status: str
    duration_ms: int


def evaluate(policy: dict[str, Any], t: FakeTrace) -> bool:
    """Whether *policy* matches *t*, for the policy types the example uses."""
    kind = policy["type"]
    if kind == "status_code":
        return t.status in policy["status_code"]["status_codes"]
    if kind == "latency":
        return t.duration_ms >= policy["latency"]["threshold_ms"]
    if kind == "probabilistic":
        share = policy["probabilistic"]["sampling_percentage"] / 100
        return int(t.trace_id[-8:], 16) < share * 2**32
    if kind == "string_attribute":
        spec = policy["string_attribute"]
        assert spec["key"] == "url.path"
        if spec.get("enabled_regex_matching"):
            return any(re.search(v, t.path) for v in spec["values"])
        return t.path in spec["values"]
    if kind == "drop":
        return all(evaluate(p, t) for p in policy["drop"]["drop_sub_policy"])
    raise AssertionError(f"unexpected policy type {kind}")


def sampled(policies: list[dict[str, Any]], t: FakeTrace) -> bool:
    """The documented rule: any drop vote drops; otherwise any sample vote keeps."""
    drops = [p for p in policies if p["type"] == "drop"]
    if any(evaluate(p, t) for p in drops):
        return False
    return any(evaluate(p, t) for p in policies if p["type"] != "drop")


def test_tail_sampling_config_uses_documented_options_and_wires_its_pipeline(
    site: Site,
) -> None:
    cfg = config(site, "distributed-tracing-tail-sampling")
    ts = cfg["processors"]["tail_sampling"]
    assert set(ts) <= TAIL_SAMPLING_OPTIONS
    assert {p["type"] for p in ts["policies"]} <= POLICY_TYPES

    pipeline = cfg["service"]["pipelines"]["traces"]
    assert pipeline["processors"] == ["memory_limiter", "tail_sampling"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(cfg[kind]), kind
    assert "batch" not in cfg["processors"], "batching belongs to the exporter queue"
    assert pipeline["exporters"] == ["otlp_grpc"]
    assert "batch" in cfg["exporters"]["otlp_grpc"]["sending_queue"]


def test_tail_sampling_buffer_outlives_the_decision_wait(site: Site) -> None:
    ts = config(site, "distributed-tracing-tail-sampling")["processors"][
        "tail_sampling"
    ]
    wait_s = int(ts["decision_wait"].removesuffix("s"))
    held_s = ts["num_traces"] / ts["expected_new_traces_per_sec"]
    assert (wait_s, held_s) == (10, 25.0)  # the numbers the prose gives
    assert held_s >= 2 * wait_s
    # The decision caches should remember more trace IDs than the buffer holds.
    for size in ts["decision_cache"].values():
        assert size > ts["num_traces"]
    # The shared worked example: 25 spans of about 400 bytes per trace.
    assert ts["num_traces"] * 25 * 400 == 500_000_000


def test_tail_sampling_policies_keep_errors_and_slow_traces_but_no_health_checks(
    site: Site,
) -> None:
    policies = config(site, "distributed-tracing-tail-sampling")["processors"][
        "tail_sampling"
    ]["policies"]
    rng = random.Random(7)

    def fake(path: str, status: str, duration_ms: int) -> FakeTrace:
        return FakeTrace(random_trace_id(rng), path, status, duration_ms)

    assert sampled(policies, fake("/api/checkout", "ERROR", 80))
    assert sampled(policies, fake("/api/checkout", "UNSET", 2_000))
    assert not sampled(policies, fake("/healthz", "ERROR", 5))
    assert not sampled(policies, fake("/readyz", "UNSET", 3_000))
    assert sampled(policies, fake("/healthz/deep", "ERROR", 5)), "the regex is anchored"

    ordinary = [fake("/api/checkout", "UNSET", 120) for _ in range(20_000)]
    share = sum(sampled(policies, t) for t in ordinary) / len(ordinary)
    assert 0.043 < share < 0.057


def test_load_balancing_tier_routes_by_trace_id_to_the_sampling_tier(
    site: Site,
) -> None:
    lb = config(site, "distributed-tracing-load-balancing")
    tier2 = config(site, "distributed-tracing-tail-sampling")
    exporter = lb["exporters"]["load_balancing"]
    assert exporter["routing_key"] == "traceID"
    # The exporter fills in each backend's endpoint itself; setting one is wrong.
    assert "endpoint" not in exporter["protocol"]["otlp"]
    assert exporter["protocol"]["otlp"]["tls"]["insecure"] is True
    hostname = exporter["resolver"]["dns"]["hostname"]
    assert "headless" in hostname and hostname.endswith(".svc.cluster.local")
    # Without a port the DNS resolver sends to 4317: tier 2 must listen there.
    assert "port" not in exporter["resolver"]["dns"]
    assert tier2["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert lb["service"]["pipelines"]["traces"]["exporters"] == ["load_balancing"]
    assert "processors" not in lb["service"]["pipelines"]["traces"]


# -- the storage table ----------------------------------------------------------------


def table_rows(site: Site, first_header: str) -> list[list[str]]:
    tree = pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes())
    for table in tree.findall(nodes.table):
        rows = [
            [entry.astext() for entry in row.findall(nodes.entry)]
            for row in table.findall(nodes.row)
        ]
        if rows and rows[0][0] == first_header:
            return rows[1:]
    raise AssertionError(f"no table headed {first_header!r}")


def number(text: str) -> float:
    return float(re.search(r"[\d.,]+", text).group(0).replace(",", ""))


def test_storage_table_follows_from_the_shared_worked_example(site: Site) -> None:
    rps, spans_per_request, bytes_per_span = 2_000, 25, 400
    full = rps * spans_per_request
    rates = {"Keep everything": 1.0, "Head sampling at 5%": 0.05}
    rates["Tail: 5% baseline, 0.5% errors, 1% slow"] = 0.05 + 0.005 + 0.01
    rows = {row[0]: row[1:] for row in table_rows(site, "Policy")}
    assert set(rows) == set(rates)
    for policy, rate in rates.items():
        spans_s, per_day, fortnight = rows[policy]
        day_bytes = full * rate * bytes_per_span * 86_400
        assert number(spans_s) == pytest.approx(full * rate)
        unit = 1e12 if "TB" in per_day else 1e9
        assert number(per_day) * unit == pytest.approx(day_bytes, rel=0.01)
        assert number(fortnight) * 1e12 == pytest.approx(14 * day_bytes, rel=0.01)

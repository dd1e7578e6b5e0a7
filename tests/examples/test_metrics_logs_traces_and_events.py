"""The examples of "Metrics, Logs, Traces, and Events" do what the essay says.

Each test reads a code block as the built site shows it (``named_block``) and
checks it offline: the cardinality arithmetic and the OpenTelemetry overflow
demonstration are run, the exemplar is parsed with the Prometheus client's
OpenMetrics parser, the scrape configuration is checked against the per-target
sample arithmetic, and the log record, exemplar and change event are checked to
join on the identifiers the essay says they share.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from conftest import Site, named_block

DOC = "essays/observability/metrics-logs-traces-and-events"
PREFIX = "metrics-logs-traces-and-events-"


def block(site: Site, what: str) -> str:
    return named_block(site, DOC, PREFIX + what)


def run(code: str) -> tuple[str, dict[str, object]]:
    """Run an essay's Python block; return what it printed and its globals."""
    namespace: dict[str, object] = {"__name__": "__essay__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<essay>", "exec"), namespace)
    return out.getvalue(), namespace


def page_text(site: Site) -> str:
    from bs4 import BeautifulSoup

    html = Path(site.html, f"{DOC}.html").read_text(encoding="utf-8")
    main = BeautifulSoup(html, "html.parser").find("article", role="main")
    assert main is not None
    return " ".join(main.get_text(" ").split())


def test_cardinality_arithmetic_matches_the_prose(site: Site) -> None:
    printed, names = run(block(site, "cardinality"))
    assert "classic: 672,000 series, 44,800 samples/s" in printed
    assert "disk for 15 days: 58 to 116 GB" in printed
    assert "native: 48,000 series" in printed
    assert names["combinations"] == 48_000
    text = page_text(site)
    for claim in ("672,000", "44,800 samples per second", "58 to 116 GB", "48,000"):
        assert claim in text, claim


def _fullmatch(regex: str, value: str) -> bool:
    """Prometheus anchors relabelling regexes at both ends."""
    return re.fullmatch(regex, value) is not None


def test_scrape_limits_admit_native_but_not_classic_histograms(site: Site) -> None:
    config = yaml.safe_load(block(site, "scrape-limits"))
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "checkout"
    assert job["scrape_native_histograms"] is True

    # One target is one pod: method x status x route label combinations.
    per_target = 5 * 8 * 40
    native_samples = per_target * 1  # a native histogram is one sample
    classic_samples = per_target * 14  # 12 buckets, _sum and _count
    limit = job["sample_limit"]
    assert native_samples == 1_600 and classic_samples == 22_400
    assert native_samples * 2 <= limit < classic_samples
    assert job["label_limit"] > 0 and job["label_value_length_limit"] > 0

    (pod,) = job["relabel_configs"]
    assert pod["source_labels"] == ["__meta_kubernetes_pod_name"]
    assert pod["target_label"] == "pod"

    drop, labeldrop = job["metric_relabel_configs"]
    assert drop["action"] == "drop" and drop["source_labels"] == ["__name__"]
    assert _fullmatch(drop["regex"], "debug_cache_entries")
    assert not _fullmatch(drop["regex"], "http_server_request_duration_seconds")
    assert labeldrop["action"] == "labeldrop"
    for label in ("user_id", "session_id", "request_id"):
        assert _fullmatch(labeldrop["regex"], label), label
    for label in ("route", "status", "method", "pod", "user_agent_class"):
        assert not _fullmatch(labeldrop["regex"], label), label
    text = page_text(site)
    assert "1,600 samples per scrape" in text and "22,400 samples" in text


def test_overflow_keeps_the_total_and_hides_the_failures(site: Site) -> None:
    printed, names = run(block(site, "overflow"))
    assert printed.strip() == "total=1862 failed=0"
    points = names["points"]
    overflow = [p for p in points if "otel.metric.overflow" in p.attributes]
    assert len(overflow) == 1
    assert dict(overflow[0].attributes) == {"otel.metric.overflow": True}
    # The twelve failures and the /search traffic were folded together.
    assert overflow[0].value == 12 + 300
    assert len(points) == 3 + 1  # the limit, plus the overflow point
    assert "Twelve requests failed and the error query returns zero" in page_text(site)


def _exemplar_sample(site: Site):
    from prometheus_client.openmetrics import parser

    (family,) = parser.text_string_to_metric_families(block(site, "exemplar"))
    assert family.type == "histogram" and family.unit == "seconds"
    buckets = [s for s in family.samples if s.name.endswith("_bucket")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    with_exemplar = [s for s in buckets if s.exemplar is not None]
    assert len(with_exemplar) == 1
    return buckets, with_exemplar[0]


def test_exemplar_is_valid_openmetrics(site: Site) -> None:
    buckets, sample = _exemplar_sample(site)
    exemplar = sample.exemplar
    bounds = [float(s.labels["le"]) for s in buckets]
    upper = float(sample.labels["le"])
    lower = max(b for b in bounds if b < upper)
    assert lower < exemplar.value <= upper, "the value falls inside its bucket"
    label_chars = sum(len(k) + len(v) for k, v in exemplar.labels.items())
    assert label_chars == 40 <= 128
    assert label_chars + len("span_id") + 16 == 63


def test_exemplar_storage_memory(site: Site) -> None:
    config = yaml.safe_load(block(site, "exemplar-storage"))
    size = config["storage"]["exemplars"]["max_exemplars"]
    bytes_per_exemplar = 100  # the feature flag documentation's estimate
    assert size * bytes_per_exemplar == 50_000_000
    assert 100_000 * bytes_per_exemplar == 10_000_000  # the default


def test_log_record_carries_the_trace_context(site: Site) -> None:
    record = json.loads(block(site, "log-record"))
    assert re.fullmatch(r"[0-9a-f]{32}", record["trace_id"])
    assert record["trace_id"] != "0" * 32
    assert re.fullmatch(r"[0-9a-f]{16}", record["span_id"])
    assert record["trace_flags"] == "01"
    _, sample = _exemplar_sample(site)
    assert sample.exemplar.labels["trace_id"] == record["trace_id"]
    logged = datetime.fromisoformat(record["timestamp"])
    assert logged.timestamp() == pytest.approx(float(sample.exemplar.timestamp))


def test_change_event_joins_the_log_record(site: Site) -> None:
    change = json.loads(block(site, "change-event"))
    record = json.loads(block(site, "log-record"))
    assert change["service.name"] == record["service.name"]
    assert change["service.version"] == record["service.version"]
    assert change["previous_version"] != change["service.version"]
    assert change["deployment.status"] in {"succeeded", "failed"}
    gap = datetime.fromisoformat(record["timestamp"]) - datetime.fromisoformat(
        change["time"]
    )
    assert 11 * 60 <= gap.total_seconds() < 12 * 60
    assert "eleven minutes before this error" in page_text(site)

"""What a span costs the application, recorded and dropped by a head sampler.

    python benchmarks/span_cost.py [--spans 4000] [--repeat 7]

The distributed-tracing essay quotes these numbers: the OpenTelemetry Python
SDK, one span with three attributes, exported in batches to an exporter
that discards them (so network and serialisation are not counted), against
the same span dropped by the sampler; and, separately, what encoding spans
as OTLP protobuf (what the OTLP exporter does in the application's process
before sending) costs per span. Runs alternate and the medians are
reported, with the ratios; a measurement, never a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON


class Discard(SpanExporter):
    def __init__(self) -> None:
        self.kept: list[Any] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.kept.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def finished_spans(spans: int) -> list[Any]:
    """*spans* recorded spans, as an exporter receives them."""
    exporter = Discard()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for _ in range(spans):
        with tracer.start_as_current_span("op") as span:
            span.set_attribute("a", 1)
            span.set_attribute("b", "x")
            span.set_attribute("c", 2.0)
    provider.shutdown()
    return exporter.kept


def encoding_microseconds_per_span(spans: list[Any]) -> float:
    start = time.perf_counter()
    encode_spans(spans).SerializeToString()
    return (time.perf_counter() - start) / len(spans) * 1e6


def microseconds_per_span(sampler: Any, spans: int) -> float:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    tracer = provider.get_tracer("bench")
    start = time.perf_counter()
    for _ in range(spans):
        with tracer.start_as_current_span("op") as span:
            span.set_attribute("a", 1)
            span.set_attribute("b", "x")
            span.set_attribute("c", 2.0)
    elapsed = time.perf_counter() - start
    provider.shutdown()
    return elapsed / spans * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--spans", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    recorded, dropped, encoded = [], [], []
    batch = finished_spans(args.spans)
    for _ in range(args.repeat):
        recorded.append(microseconds_per_span(ALWAYS_ON, args.spans))
        dropped.append(microseconds_per_span(ALWAYS_OFF, args.spans))
        encoded.append(encoding_microseconds_per_span(batch))
    r, d = statistics.median(recorded), statistics.median(dropped)
    e = statistics.median(encoded)
    print(f"recorded span: {r:.1f} µs (median of {args.repeat})")
    print(f"dropped span:  {d:.1f} µs (median of {args.repeat})")
    print(f"OTLP encoding: {e:.1f} µs per span (median of {args.repeat})")
    print(f"dropped / recorded: {d / r:.2f}; encoding / recording: {e / r:.2f}")


if __name__ == "__main__":
    main()

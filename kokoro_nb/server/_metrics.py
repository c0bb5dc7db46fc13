"""Prometheus metrics of the speech server: requests, errors, time to first byte, real-time factor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

# Seconds: a warm first piece takes ~0.2-0.5 s on two cores; long clips take many seconds.
_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 21, 34, 60)
_RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 4)


class ServerMetrics:
    """One registry per app, so several apps in one process (tests, notebooks) stay apart."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        ProcessCollector(registry=reg)  # process_resident_memory_bytes and friends
        self.requests = Counter(
            "kokoro_speech_requests",
            "Speech requests answered, by format, streaming and HTTP status",
            ["format", "stream", "status"],
            registry=reg,
        )
        self.errors = Counter(
            "kokoro_speech_errors",
            "Speech requests that failed, by OpenAI error type and code",
            ["type", "code"],
            registry=reg,
        )
        self.disconnects = Counter(
            "kokoro_speech_disconnects",
            "Clients that left before their audio was complete (synthesis stopped)",
            registry=reg,
        )
        self.in_flight = Gauge(
            "kokoro_speech_in_flight", "Speech requests being synthesized now", registry=reg
        )
        self.ttfb = self._latency(
            "kokoro_speech_time_to_first_byte_seconds",
            "From request to the first audio bytes handed to the socket",
        )
        self.duration = self._latency(
            "kokoro_speech_duration_seconds", "From request to the last audio byte"
        )
        self.rtf = Histogram(
            "kokoro_speech_real_time_factor",
            "Engine synthesis time over audio duration (below 1 is faster than real time)",
            ["provider"],
            buckets=_RTF_BUCKETS,
            registry=reg,
        )
        self.audio = Counter(
            "kokoro_speech_audio_seconds",
            "Seconds of audio delivered",
            ["provider"],
            registry=reg,
        )
        self.ready = Gauge(
            "kokoro_engine_ready", "1 once the engine is built and warm", registry=reg
        )

    def _latency(self, name: str, documentation: str) -> Histogram:
        """Seconds since the request arrived, by provider and whether the answer streamed."""
        return Histogram(
            name,
            documentation,
            ["provider", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def finished(
        self, fmt: str, stream: bool, engine_metrics: Mapping[str, Any], ttfb: float, total: float
    ) -> None:
        """Record a request whose audio went out complete."""
        provider = str(engine_metrics.get("provider") or "none")
        flag = str(stream).lower()
        self.requests.labels(fmt, flag, "200").inc()
        self.ttfb.labels(provider, flag).observe(ttfb)
        self.duration.labels(provider, flag).observe(total)
        if engine_metrics.get("rtf") is not None:
            self.rtf.labels(provider).observe(float(engine_metrics["rtf"]))
        self.audio.labels(provider).inc(float(engine_metrics.get("audio_s") or 0.0))

    def failed(
        self, fmt: str, stream: bool | None, status: int, kind: str, code: str | None
    ) -> None:
        self.requests.labels(fmt, str(bool(stream)).lower(), str(status)).inc()
        self.errors.labels(kind, code or "").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

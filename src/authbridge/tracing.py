"""OpenTelemetry spans, when the ``authbridge[otel]`` extra is installed and turned on; nothing otherwise.

```
tracer = Tracer(provider)                  # provider: an SDK TracerProvider (None: the global one)
with tracer.server("GET /connections/{connection_id}", headers):   # the caller's traceparent is the parent
    with tracer.client("upstream GET", {"authbridge.integration": "github"}) as span:
        tracer.inject(outgoing_headers)    # W3C traceparent (and tracestate) for the upstream
```

OpenTelemetry is imported only when a ``Tracer`` is built (``AUTHBRIDGE_OTEL=true``, or a provider given
to ``create_app``). Without one, the code that would trace holds ``None`` and skips every call: the
cost is one ``is None`` test. Span attributes name the integration key, methods, status codes and
route templates, never a connection id's secrets, a token, a parameter value or a query string.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Iterator

from authbridge.errors import ConfigError

if typing.TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["Tracer", "configured_tracer"]

_SERVER, _CLIENT, _INTERNAL = "SERVER", "CLIENT", "INTERNAL"


class Tracer:
    """A thin door to an OpenTelemetry tracer: server, client and internal spans, and W3C propagation."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        try:
            from opentelemetry import propagate, trace
        except ImportError:  # pragma: no cover - the dev extra installs it; see configured_tracer's message
            raise ConfigError(
                "AUTHBRIDGE_OTEL=true needs the OpenTelemetry packages: pip install 'authbridge[otel]'"
            ) from None
        self._trace = trace
        self._propagate = propagate
        self._tracer = (provider or trace.get_tracer_provider()).get_tracer("authbridge")
        self._kinds = {
            _SERVER: trace.SpanKind.SERVER,
            _CLIENT: trace.SpanKind.CLIENT,
            _INTERNAL: trace.SpanKind.INTERNAL,
        }

    @contextlib.contextmanager
    def _span(
        self, name: str, kind: str, attributes: typing.Mapping[str, typing.Any] | None, parent: typing.Any = None
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=self._kinds[kind],
            attributes=dict(attributes or {}),
            record_exception=False,  # an exception's text may quote anything: status and type only
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                self.failed(span, type(exc).__name__)
                raise

    def server(
        self,
        name: str,
        headers: typing.Iterable[tuple[bytes, bytes]],
        attributes: typing.Mapping[str, typing.Any] | None = None,
    ) -> contextlib.AbstractContextManager[Span]:
        """A span for a request AuthBridge serves, child of the caller's ``traceparent`` when it sent one."""
        carrier: dict[str, str] = {}
        for key, value in headers:
            if key in (b"traceparent", b"tracestate"):
                carrier.setdefault(key.decode("latin-1"), value.decode("latin-1"))  # the first of repeated ones
        parent = self._propagate.extract(carrier) if carrier else None
        return self._span(name, _SERVER, attributes, parent)

    def client(
        self, name: str, attributes: typing.Mapping[str, typing.Any] | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """A span for a call AuthBridge makes (the proxy's upstream, a token endpoint)."""
        return self._span(name, _CLIENT, attributes)

    def internal(
        self, name: str, attributes: typing.Mapping[str, typing.Any] | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """A span for work inside AuthBridge (a refresh)."""
        return self._span(name, _INTERNAL, attributes)

    def inject(self, headers: typing.MutableMapping[str, str]) -> None:
        """Put the current span's W3C trace context in ``headers`` (replacing any the caller sent)."""
        for name in [n for n in headers if n.lower() in {"traceparent", "tracestate"}]:
            del headers[name]
        self._propagate.inject(headers)

    def failed(self, span: Span, reason: str) -> None:
        """Mark ``span`` as failed, with a short reason that holds no secret (an error code or type)."""
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, reason))


def configured_tracer(enabled: bool) -> Tracer | None:
    """The tracer ``AUTHBRIDGE_OTEL`` asks for: None when off; else the global provider, or one made here.

    When no provider is installed yet (no ``opentelemetry-instrument``), an SDK provider is made that
    exports over OTLP/HTTP as the standard ``OTEL_*`` variables say (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_SERVICE_NAME``...).
    """
    if not enabled:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise ConfigError(
            "AUTHBRIDGE_OTEL=true needs the OpenTelemetry packages: pip install 'authbridge[otel]'"
        ) from None
    current = trace.get_tracer_provider()
    if isinstance(current, SdkTracerProvider):
        return Tracer(current)
    provider = SdkTracerProvider(resource=Resource.create({"service.name": "authbridge"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return Tracer(provider)

#!/usr/bin/env python3
"""A local stand-in for an OpenTelemetry collector: takes OTLP/HTTP traces
(POST /v1/traces, protobuf, as `serve` and the functions export them when
OTEL_EXPORTER_OTLP_ENDPOINT is set) and prints one line per span:

    trace <trace id>  span <span id>  <- <parent span id, or "root">  <service>  <name>  <okr.outcome>  <okr.event_id>

usage: python3 tests/otlp_collector.py [PORT]   (default 4318, OTLP/HTTP's)
Needs the `opentelemetry-proto` package (tests/run.sh installs it).
"""
import http.server
import sys

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def text(value):
    kind = value.WhichOneof("value")
    return str(getattr(value, kind)) if kind else ""


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            service = next(
                (text(a.value) for a in resource.resource.attributes if a.key == "service.name"), ""
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: text(a.value) for a in span.attributes}
                    parent = span.parent_span_id.hex() or "root"
                    print(
                        f"trace {span.trace_id.hex()}  span {span.span_id.hex()}  <- {parent}  "
                        f"{service}  {span.name}  {attributes.get('okr.outcome', '')}  "
                        f"{attributes.get('okr.event_id', '')}",
                        flush=True,
                    )
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()

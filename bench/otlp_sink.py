#!/usr/bin/env python3
"""An OTLP/gRPC trace receiver that counts and drops what it receives: the other end of
the host's exporter when a benchmark measures what tracing costs (bench/callgrind with
`[tracing] otlp_endpoint`). Needs the reference venv (tests/requirements.txt).

    <venv>/bin/python bench/otlp_sink.py --port 4317

Prints "READY" once it listens; on SIGTERM prints "SPANS <n>" and exits.
"""

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self):
        self.spans = 0
        self.lock = threading.Lock()

    def Export(self, request, context):
        count = sum(len(scope.spans) for resource in request.resource_spans
                    for scope in resource.scope_spans)
        with self.lock:
            self.spans += count
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    sink = Sink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1)
    print(f"SPANS {sink.spans}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

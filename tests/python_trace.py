#!/usr/bin/env python3
"""A trace started by Microsoft's Python SDK (durabletask==1.12.0, with OpenTelemetry),
through durabletask-host and back, for tests/tests/traces.rs.

    <venv>/bin/python tests/python_trace.py --address localhost:4001 --otlp http://127.0.0.1:4317

Exports its spans over OTLP/gRPC to --otlp (service.name "python-sdk"), runs a Python
worker serving `py_greet` (activity) and `py_child` (orchestrator) with work-item filters,
then, inside a span "checkout", starts the `calls_python` orchestration of the host's
`faulty` test plugin with the Python client, which puts the span's context into the
request's parentTraceContext. The host's orchestration calls `py_greet` and `py_child`
back on the Python worker. Waits for it, flushes the spans and prints one JSON line:
{"trace_id", "instance_id", "status", "output"}.
"""

import argparse
import json
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from durabletask import task
from durabletask.client import TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker


def py_greet(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello {name} from Python!"


def py_child(ctx: task.OrchestrationContext, x: int):
    return x * 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True, help="the backend, host:port")
    parser.add_argument("--otlp", required=True, help="the OTLP/gRPC receiver, http://host:port")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    provider = TracerProvider(resource=Resource.create({"service.name": "python-sdk"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=args.otlp, insecure=True))
    )
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("durabletask-host-tests")

    worker = TaskHubGrpcWorker(host_address=args.address)
    worker.add_activity(py_greet)
    worker.add_orchestrator(py_child)
    worker.use_work_item_filters()
    worker.start()
    try:
        client = TaskHubGrpcClient(host_address=args.address)
        with tracer.start_as_current_span("checkout") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            instance_id = client.schedule_new_orchestration("calls_python", input="Ada")
        state = client.wait_for_orchestration_completion(instance_id, timeout=args.timeout)
    finally:
        worker.stop()
        provider.shutdown()
    print(json.dumps({
        "trace_id": trace_id,
        "instance_id": instance_id,
        "status": state.runtime_status.name if state else None,
        "output": json.loads(state.serialized_output) if state and state.serialized_output else None,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Calls the sidecar's Hello RPC on ENDPOINT over and over, as a client would while the
host is under attack, and reports the slowest answer.

Usage: hello_probe.py HOST:PORT
Prints "ready" once the first Hello was answered, then calls Hello every 20 ms until its
standard input is closed, and prints one JSON line: {"calls", "failures", "max_ms",
"p99_ms", "slowest_at"} (slowest_at: seconds since the first call).
"""

import json
import sys
import threading
import time

import grpc
from google.protobuf import empty_pb2

from durabletask.internal import orchestrator_service_pb2_grpc as stubs

INTERVAL = 0.02
DEADLINE = 10.0


def main() -> None:
    channel = grpc.insecure_channel(sys.argv[1])
    stub = stubs.TaskHubSidecarServiceStub(channel)
    stub.Hello(empty_pb2.Empty(), timeout=30)
    print("ready", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    latencies = []
    failures = 0
    slowest_at = 0.0
    began = time.monotonic()
    while not stop.is_set():
        sent = time.monotonic()
        try:
            stub.Hello(empty_pb2.Empty(), timeout=DEADLINE)
        except grpc.RpcError:
            failures += 1
        took = time.monotonic() - sent
        if not latencies or took > max(latencies):
            slowest_at = sent - began
        latencies.append(took)
        stop.wait(INTERVAL)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    print(json.dumps({
        "calls": len(latencies),
        "failures": failures,
        "max_ms": round(max(latencies, default=0.0) * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "slowest_at": round(slowest_at, 2),
    }), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs Microsoft's in-memory Durable Task backend for durabletask-host's tests and samples.

Usage:
    <venv>/bin/python tests/reference_backend.py --port 4001 [--log-level WARNING]

The backend is `durabletask.testing` from the PyPI package durabletask==1.12.0: a complete
in-memory TaskHubSidecarService on [::]:<port>, plaintext gRPC, all state lost on exit.

Prints one line, "READY port=<port> pid=<pid>", on stdout (flushed) once the server
listens AND has answered a Hello() from this process, so callers wait on that line
instead of sleeping. Runs until SIGTERM or SIGINT, then stops the server and exits 0.
Exits 1 with a message on stderr if the port cannot be served.
"""

import argparse
import logging
import os
import signal
import sys
import threading

import grpc
from google.protobuf import empty_pb2

import durabletask.internal.orchestrator_service_pb2_grpc as stubs
from durabletask.testing import create_test_backend

HELLO_TIMEOUT_S = 10


def serve_ports_exclusively() -> None:
    """Makes every gRPC server of this process refuse a port that is already in use.

    gRPC sets SO_REUSEPORT by default, so a second backend started on a busy port would
    silently share it with the first, and clients would reach either at random. Tests
    pick free ports and retry on failure, which only works if a busy port is an error.
    The in-memory backend builds its server with `grpc.server(...)` and takes no
    options, hence the wrapper.
    """
    real_server = grpc.server

    def exclusive_server(*args, **kwargs):
        options = list(kwargs.pop("options", None) or [])
        options.append(("grpc.so_reuseport", 0))
        return real_server(*args, options=options, **kwargs)

    grpc.server = exclusive_server


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-history-size", type=int, default=10000)
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="level of the backend's own Python logger (INFO logs every call)",
    )
    args = parser.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())

    serve_ports_exclusively()
    try:
        backend = create_test_backend(port=args.port, max_history_size=args.max_history_size)
        # Announce READY only once the server really answers on the port.
        with grpc.insecure_channel(f"localhost:{args.port}") as channel:
            stubs.TaskHubSidecarServiceStub(channel).Hello(
                empty_pb2.Empty(), timeout=HELLO_TIMEOUT_S
            )
    except Exception as error:  # noqa: BLE001 - any failure here means "cannot serve"
        print(f"reference backend failed to start on port {args.port}: {error!r}", file=sys.stderr)
        return 1

    print(f"READY port={args.port} pid={os.getpid()}", flush=True)

    while not stop.wait(0.5):
        pass

    backend.stop(grace=1.0)
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

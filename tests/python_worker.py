#!/usr/bin/env python3
"""Microsoft's Python SDK worker (durabletask==1.12.0) for durabletask-host's interop tests.

Usage:
    <venv>/bin/python tests/python_worker.py --address localhost:4001

Registers, all with `py_` names so they never clash with the Rust test plugins:
    activity     py_greet(name) -> "Hello {name} from Python!"
    orchestrator py_child(x) -> x * 2
    orchestrator py_parent(n) -> [rust_square(n), rust_child(n)]: calls the Rust activity
                 `rust_square` and the Rust sub-orchestrator `rust_child`, both served by
                 durabletask-host with the `faulty` test plugin.

It sends work-item filters built from these names (`use_work_item_filters()`), so the
backend never hands it the Rust side's work.

Prints "READY pid=<pid>" on stdout (flushed) once the worker has started, then runs until
SIGTERM or SIGINT, stops the worker and prints "STOPPED".
"""

import argparse
import logging
import os
import signal
import sys
import threading

from durabletask import task
from durabletask.worker import TaskHubGrpcWorker


def py_greet(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello {name} from Python!"


def py_child(ctx: task.OrchestrationContext, x: int):
    return x * 2


def py_parent(ctx: task.OrchestrationContext, n: int):
    square = yield ctx.call_activity("rust_square", input=n)
    child = yield ctx.call_sub_orchestrator("rust_child", input=n)
    return [square, child]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", required=True, help="the backend, host:port")
    parser.add_argument("--log-level", default="WARNING", help="the worker logger's level")
    args = parser.parse_args()

    logger = logging.Logger("python-worker")
    logger.setLevel(getattr(logging, args.log_level.upper()))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger.addHandler(handler)

    worker = TaskHubGrpcWorker(host_address=args.address, logger=logger)
    worker.add_activity(py_greet)
    worker.add_orchestrator(py_child)
    worker.add_orchestrator(py_parent)
    # Filters from the registered names: only py_* work items reach this worker.
    worker.use_work_item_filters()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())

    worker.start()
    print(f"READY pid={os.getpid()}", flush=True)
    while not stop.wait(0.5):
        pass
    worker.stop()
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

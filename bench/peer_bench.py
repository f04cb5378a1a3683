#!/usr/bin/env python3
"""A worker against Microsoft's reference backend: its CPU, memory and latency.

Runs one worker on the `bench_seq_fan` workload against Microsoft's in-memory backend
(`durabletask.testing`, PyPI durabletask==1.12.0, started with tests/reference_backend.py)
and prints one JSON line of figures. The worker is Microsoft's Python worker
(`--worker python`: TaskHubGrpcWorker with its default concurrency options, the
workload below registered in this file) or durabletask-host (`--worker host`: the
release binary with the `bench` plugin, pointed at the same backend).

    <venv>/bin/python bench/peer_bench.py --worker python|host [--latency L] [--n N]
        [--k K] [--f F] [--isolation in-process|process] [--repo DIR]

Phases, after one warm-up orchestration:
  one at a time  L orchestrations (K activities in sequence, no fan-out), each started
                 and waited for: p50/p99 start to completion, worker CPU per
                 orchestration;
  throughput     N orchestrations (K in sequence, then F in parallel) started at once
                 and waited for: wall time, worker CPU per orchestration.
Every output is checked. Worker CPU is user + system time of the worker's process and
its children (a plugin's process under isolation), from /proc; peak memory is the sum
of their VmHWM.

The workload (the names the `bench` plugin implements):
  activity     bench_inc(x) -> x + 1
  orchestrator bench_seq_fan({"x", "k", "f"}): v = x; K times v = bench_inc(v); then
               bench_inc(v + j) for j in 0..F in parallel; returns
               {"seq": v, "fan_sum": sum of the F results}
"""

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the Python workload

def bench_inc(ctx, x):
    return x + 1


def bench_seq_fan(ctx, inp):
    from durabletask import task

    v = inp["x"]
    for _ in range(inp["k"]):
        v = yield ctx.call_activity("bench_inc", input=v)
    results = []
    if inp["f"] > 0:
        results = yield task.when_all(
            [ctx.call_activity("bench_inc", input=v + j) for j in range(inp["f"])])
    return {"seq": v, "fan_sum": sum(results)}


def expected(x, k, f):
    v = x + k
    return {"seq": v, "fan_sum": f * v + f * (f + 1) // 2}


def quiet_logger(name):
    """The SDK logs every call at INFO; only warnings are of interest here."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    logger.addHandler(logging.StreamHandler(sys.stderr))
    logger.propagate = False
    return logger


def python_worker(address):
    """The `worker` role: Microsoft's worker with its defaults, until SIGTERM."""
    from durabletask.worker import TaskHubGrpcWorker

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = TaskHubGrpcWorker(host_address=address, logger=quiet_logger("durabletask-worker"))
    worker.add_orchestrator(bench_seq_fan)
    worker.add_activity(bench_inc)
    worker.start()
    stop.wait()
    worker.stop()
    return 0


# ------------------------------------------------------------------ /proc

def process_tree(pid):
    tree, index = [pid], 0
    while index < len(tree):
        parent = tree[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task_id in tasks:
            try:
                with open(f"/proc/{parent}/task/{task_id}/children") as fh:
                    tree.extend(int(child) for child in fh.read().split())
            except OSError:
                pass
    return tree


def tree_files(pid, name):
    """/proc/<member>/<name> of each living member of the process tree of `pid`."""
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/{name}") as fh:
                yield fh.read()
        except OSError:
            pass


def cpu_seconds(pid):
    return sum((int(fields[11]) + int(fields[12])) / CLK_TCK
               for fields in (stat.rsplit(")", 1)[1].split() for stat in tree_files(pid, "stat")))


def peak_rss_mb(pid):
    kb = 0
    for status in tree_files(pid, "status"):
        kb += next((int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("VmHWM:")), 0)
    return kb / 1024


# ------------------------------------------------------------------ processes

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_backend(work):
    port = free_port()
    log = open(os.path.join(work, "backend.log"), "w")
    backend = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "tests", "reference_backend.py"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    # The script prints READY once the server answered a Hello: no sleeping.
    line = backend.stdout.readline()
    if not line.startswith("READY"):
        raise RuntimeError(f"the reference backend did not start: {line!r}; see {log.name}")
    return backend, f"localhost:{port}"


def start_worker(args, address, work):
    log = open(os.path.join(work, "worker.log"), "w")
    if args.worker == "python":
        command = [sys.executable, os.path.abspath(__file__), "--serve-python-worker", address]
    else:
        release = os.path.join(args.repo, "target", "release")
        plugins = os.path.join(work, "plugins")
        os.makedirs(plugins)
        with open(os.path.join(release, "libbench.so"), "rb") as src, \
                open(os.path.join(plugins, "libbench.so"), "wb") as dst:
            dst.write(src.read())
        config = os.path.join(work, "host.toml")
        with open(config, "w") as fh:
            fh.write(f"""[backend]
endpoint = "http://{address}"

[worker]
max_concurrent_orchestrations = 200
max_concurrent_activities = 200

[plugins]
dir = "plugins"
watch = false
isolation = "{args.isolation}"

[logging]
level = "warn"

[admin]
listen = "127.0.0.1:0"
""")
        binary = args.host_binary or os.path.join(release, "durabletask-host")
        command = [binary, "--config", config]
    return subprocess.Popen(command, cwd=work, stdout=log, stderr=log, start_new_session=True)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------ phases

def run_one(client, x, k, f):
    from durabletask.client import OrchestrationStatus

    instance = client.schedule_new_orchestration("bench_seq_fan", input={"x": x, "k": k, "f": f})
    state = client.wait_for_orchestration_completion(instance, timeout=120)
    if state is None or state.runtime_status != OrchestrationStatus.COMPLETED:
        raise RuntimeError(f"{instance} did not complete: {state}")
    if state.get_output() != expected(x, k, f):
        raise RuntimeError(f"{instance}: output {state.get_output()!r}, expected {expected(x, k, f)!r}")


def one_at_a_time(client, pid, runs, k):
    took = []
    cpu = cpu_seconds(pid)
    for x in range(runs):
        started = time.monotonic()
        run_one(client, x, k, 0)
        took.append(time.monotonic() - started)
    cpu = cpu_seconds(pid) - cpu
    took.sort()
    at = lambda q: round(1000 * took[min(len(took) - 1, int(len(took) * q))], 2)
    return {"latency_p50_ms": at(0.5), "latency_p99_ms": at(0.99),
            "one_at_a_time_cpu_ms_per_orch": round(1000 * cpu / runs, 3)}


def throughput(client, pid, n, k, f):
    from durabletask.client import OrchestrationStatus

    cpu = cpu_seconds(pid)
    started = time.monotonic()
    ids = [client.schedule_new_orchestration("bench_seq_fan", input={"x": x, "k": k, "f": f})
           for x in range(n)]
    failures = []

    def wait(part):
        for x, instance in part:
            state = client.wait_for_orchestration_completion(instance, timeout=600)
            if state is None or state.runtime_status != OrchestrationStatus.COMPLETED \
                    or state.get_output() != expected(x, k, f):
                failures.append((instance, str(state and state.runtime_status)))

    # The reference backend serves 10 calls at a time: few waiters.
    indexed = list(enumerate(ids))
    waiters = [threading.Thread(target=wait, args=(indexed[j::4],)) for j in range(4)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    wall = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu
    if failures:
        raise RuntimeError(f"{len(failures)} of {n} orchestrations failed, first: {failures[:3]}")
    return {"throughput_wall_s": round(wall, 2), "throughput_orch_per_s": round(n / wall, 1),
            "throughput_cpu_ms_per_orch": round(1000 * cpu / n, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=["python", "host"])
    parser.add_argument("--latency", type=int, default=100)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--f", type=int, default=10)
    parser.add_argument("--isolation", default="in-process", choices=["in-process", "process"])
    parser.add_argument("--repo", default=REPO, help="the repository whose release build runs")
    parser.add_argument("--host-binary", help="another build of the host (an A/B comparison)")
    parser.add_argument("--serve-python-worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_python_worker:
        return python_worker(args.serve_python_worker)
    if not args.worker:
        parser.error("--worker is required")

    from durabletask.client import TaskHubGrpcClient

    work = tempfile.mkdtemp(prefix="durabletask-peer-bench-")
    backend = worker = None
    try:
        backend, address = start_backend(work)
        worker = start_worker(args, address, work)
        client = TaskHubGrpcClient(host_address=address, logger=quiet_logger("durabletask-client"))
        run_one(client, 0, 1, 2)  # warm-up: the worker is connected and serving
        result = {"worker": args.worker, "k": args.k, "f": args.f, "n": args.n,
                  "latency_runs": args.latency, "load_before": os.getloadavg()[0]}
        if args.worker == "host":
            result["isolation"] = args.isolation
        if args.latency:
            result.update(one_at_a_time(client, worker.pid, args.latency, args.k))
        if args.n:
            result.update(throughput(client, worker.pid, args.n, args.k, args.f))
        result["peak_rss_mb"] = round(peak_rss_mb(worker.pid), 1)
        result["load_after"] = os.getloadavg()[0]
        client.close()
        print(json.dumps(result), flush=True)
        return 0
    finally:
        for process in (worker, backend):
            if process is not None:
                stop(process)


if __name__ == "__main__":
    sys.exit(main())

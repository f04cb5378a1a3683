#!/usr/bin/env python3
"""Microsoft's Python SDK (durabletask==1.12.0), worker and client, against a Durable Task backend.

Purpose:
    Proves that a backend serves the reference SDK end to end, with no durabletask-host
    worker involved: this script registers its own orchestrators, activities and a
    function entity (all named `pysdk_...`) on a TaskHubGrpcWorker, drives them with a
    TaskHubGrpcClient, and checks what a user would check (runtime status, outputs as
    JSON values, failure details, entity state). It was written for the host's embedded
    backend and validated first against Microsoft's in-memory backend
    (tests/reference_backend.py).

Usage:
    <venv>/bin/python tests/python_sdk_scenarios.py --address HOST:PORT
        [--taskhub NAME] [--timeout SECONDS] [--skip NAME]... [--only NAME]...
        [--use-work-item-filters] [--log-level LEVEL]

    --address     the backend's gRPC address, HOST:PORT (plaintext).
    --taskhub     sent as the `taskhub` metadata header on every call (default: default).
    --timeout     the bound on each scenario, in seconds (default 60).
    --skip NAME   report NAME as `SKIP NAME` instead of running it (repeatable). For a
                  backend with a documented gap; the embedded backend must run them all.
    --only NAME   run only the named scenarios (repeatable); for debugging.
    --use-work-item-filters
                  send work-item filters built from the registered names, so this worker
                  only gets `pysdk_` work when other workers share the backend.

Output (stdout, one flushed line each, in order):
    PASS <name>
    FAIL <name>: <why>
    SKIP <name>            (only for --skip / --only)
    SUMMARY passed=N failed=M
Exit status 0 only if no scenario failed (skipped ones do not count as failures), 2 on
bad arguments. SDK logs go to stderr.

Every scenario runs on its own thread, bounded by --timeout (a hung gRPC call fails the
scenario instead of hanging the script). Instance ids and entity keys carry a random
run id, so reruns against a backend that keeps its state do not collide.

Run one copy at a time per backend (or give each copy its own backend): copies register
the same names, so one copy's worker takes another's work items, and on the in-memory
backend a work item dispatched to a worker that is stopping is lost, which hangs the
other copy's scenario until its timeout.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from durabletask import client, task
from durabletask.entities import EntityContext, EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker

# ---------------------------------------------------------------------------------------
# Activities
# ---------------------------------------------------------------------------------------


def pysdk_append(ctx: task.ActivityContext, args: dict[str, str]) -> str:
    """Returns text + suffix (the chaining step)."""
    return args["text"] + args["suffix"]


def pysdk_square(ctx: task.ActivityContext, n: int) -> int:
    return n * n


# ---------------------------------------------------------------------------------------
# Orchestrators
# ---------------------------------------------------------------------------------------


def pysdk_chain(ctx: task.OrchestrationContext, text: str):
    """Function chaining: three activities in sequence, each fed the previous output."""
    for suffix in ["-one", "-two", "-three"]:
        text = yield ctx.call_activity(pysdk_append, input={"text": text, "suffix": suffix})
    return text


def pysdk_fan_out_fan_in(ctx: task.OrchestrationContext, count: int):
    """Fan-out/fan-in: `count` activities in parallel, then their sum."""
    tasks = [ctx.call_activity(pysdk_square, input=n) for n in range(1, count + 1)]
    squares = yield task.when_all(tasks)
    return {"squares": squares, "sum": sum(squares)}


def pysdk_wait_for_event(ctx: task.OrchestrationContext, _):
    """Waits for the external event `pysdk_go` and returns its payload."""
    payload = yield ctx.wait_for_external_event("pysdk_go")
    return {"received": payload}


def pysdk_approval_with_timeout(ctx: task.OrchestrationContext, timeout_seconds: float):
    """Waits for `pysdk_approval` or a durable timer, whichever comes first."""
    approval = ctx.wait_for_external_event("pysdk_approval")
    timeout = ctx.create_timer(timedelta(seconds=timeout_seconds))
    winner = yield task.when_any([approval, timeout])
    if winner == timeout:
        return "timed out"
    return f"approved by {approval.get_result()}"


def pysdk_timer(ctx: task.OrchestrationContext, seconds: float):
    """Sleeps on a durable timer; returns how long that took on the orchestration clock."""
    started = ctx.current_utc_datetime
    yield ctx.create_timer(started + timedelta(seconds=seconds))
    return (ctx.current_utc_datetime - started).total_seconds()


def pysdk_child(ctx: task.OrchestrationContext, n: int):
    squared = yield ctx.call_activity(pysdk_square, input=n)
    return {"child": ctx.instance_id, "squared": squared}


def pysdk_parent(ctx: task.OrchestrationContext, n: int):
    """Calls pysdk_child as a sub-orchestration with a known instance id."""
    child_output = yield ctx.call_sub_orchestrator(
        pysdk_child, input=n, instance_id=f"{ctx.instance_id}-child"
    )
    return {"parent": ctx.instance_id, "child_output": child_output}


def pysdk_count_to_three(ctx: task.OrchestrationContext, counts: list[int]):
    """Continue-as-new: each execution appends the next count, until it reaches 3."""
    if len(counts) < 3:
        ctx.continue_as_new(counts + [len(counts) + 1])
        return None
    return {"counts": counts}


def pysdk_call_counter(ctx: task.OrchestrationContext, key: str):
    """Calls the counter entity: add 3, add 4, get; returns the three results."""
    counter = EntityInstanceId("pysdk_counter", key)
    first = yield ctx.call_entity(counter, "add", 3)
    second = yield ctx.call_entity(counter, "add", 4)
    current = yield ctx.call_entity(counter, "get")
    return [first, second, current]


def pysdk_transfer(ctx: task.OrchestrationContext, args: dict[str, Any]):
    """Moves `amount` from one counter to another inside a critical section on both."""
    source = EntityInstanceId("pysdk_counter", args["from"])
    target = EntityInstanceId("pysdk_counter", args["to"])
    amount = args["amount"]
    with (yield ctx.lock_entities([source, target])):
        balance = yield ctx.call_entity(source, "get")
        if balance < amount:
            return {"error": f"insufficient balance {balance}"}
        source_after = yield ctx.call_entity(source, "add", -amount)
        target_after = yield ctx.call_entity(target, "add", amount)
    return {"from": source_after, "to": target_after}


# ---------------------------------------------------------------------------------------
# Entity
# ---------------------------------------------------------------------------------------


def pysdk_counter(ctx: EntityContext, value: Any):
    """A function entity holding an int: `add` (returns the new value) and `get`."""
    state = ctx.get_state(int, 0)
    if ctx.operation == "add":
        state += value
        ctx.set_state(state)
        return state
    if ctx.operation == "get":
        return state
    raise ValueError(f"pysdk_counter has no operation '{ctx.operation}'")


ORCHESTRATORS = [
    pysdk_chain,
    pysdk_fan_out_fan_in,
    pysdk_wait_for_event,
    pysdk_approval_with_timeout,
    pysdk_timer,
    pysdk_child,
    pysdk_parent,
    pysdk_count_to_three,
    pysdk_call_counter,
    pysdk_transfer,
]
ACTIVITIES = [pysdk_append, pysdk_square]
ENTITIES = [pysdk_counter]

# ---------------------------------------------------------------------------------------
# Checking helpers
# ---------------------------------------------------------------------------------------


class ScenarioFailed(Exception):
    """A check failed; the message says why."""


@dataclass
class Scenario:
    """What a scenario gets: the client, a unique id prefix and its deadline."""

    client: client.TaskHubGrpcClient
    prefix: str
    deadline: float

    def left(self) -> float:
        """Seconds left before the deadline (at least a little, so calls still bound)."""
        return max(0.1, self.deadline - time.monotonic())

    def instance_id(self, suffix: str = "") -> str:
        return f"{self.prefix}{suffix}"

    def wait(self, instance_id: str) -> client.OrchestrationState:
        """Waits (bounded) until the instance is COMPLETED, FAILED or TERMINATED."""
        return self._sdk_wait(
            self.client.wait_for_orchestration_completion, instance_id, "finish"
        )

    def wait_started(self, instance_id: str) -> None:
        """Waits (bounded) with wait_for_orchestration_start; requires RUNNING."""
        state = self._sdk_wait(self.client.wait_for_orchestration_start, instance_id, "start")
        expect_status(state, client.OrchestrationStatus.RUNNING)

    def _sdk_wait(
        self, sdk_wait: Callable[..., client.OrchestrationState | None], instance_id: str, what: str
    ) -> client.OrchestrationState:
        """Calls one of the client's wait_for_* methods with the time left."""
        try:
            state = sdk_wait(instance_id, timeout=self.left())
        except TimeoutError:
            now = self.client.get_orchestration_state(instance_id)
            raise ScenarioFailed(
                f"{instance_id} did not {what} in time; it is {describe(now)}"
            ) from None
        if state is None:
            raise ScenarioFailed(f"{instance_id} does not exist")
        return state

    def wait_for_status(
        self, instance_id: str, status: client.OrchestrationStatus
    ) -> client.OrchestrationState:
        """Polls (bounded) until the instance has `status`."""
        while True:
            state = self.client.get_orchestration_state(instance_id)
            if state is not None and state.runtime_status == status:
                return state
            if time.monotonic() >= self.deadline:
                raise ScenarioFailed(
                    f"{instance_id} never became {status.name}; it is {describe(state)}"
                )
            time.sleep(0.05)

    def completed_output(self, instance_id: str) -> Any:
        """Waits for the instance, requires COMPLETED without failure; returns its output."""
        state = self.wait(instance_id)
        expect_status(state, client.OrchestrationStatus.COMPLETED)
        return state.get_output()

    def entity_state(self, entity: EntityInstanceId, expected: Any) -> None:
        """Polls get_entity (bounded) until the entity exists with state `expected`."""
        last = "it does not exist"
        while time.monotonic() < self.deadline:
            metadata = self.client.get_entity(entity, include_state=True)
            if metadata is not None:
                state = metadata.get_typed_state()
                if state == expected:
                    return
                last = f"its state is {state!r}"
            time.sleep(0.05)
        raise ScenarioFailed(f"entity {entity} never had state {expected!r}: {last}")


def describe(state: client.OrchestrationState | None) -> str:
    if state is None:
        return "missing"
    text = f"{state.runtime_status.name}, output {state.serialized_output!r}"
    if state.failure_details is not None:
        details = state.failure_details
        text += f", failure {details.error_type}: {details.message}"
    return text


def expect_status(state: client.OrchestrationState, status: client.OrchestrationStatus) -> None:
    if state.runtime_status != status or (
        status == client.OrchestrationStatus.COMPLETED and state.failure_details is not None
    ):
        raise ScenarioFailed(f"{state.instance_id} is {describe(state)}, expected {status.name}")


def expect_equal(what: str, actual: Any, expected: Any) -> None:
    if actual != expected:
        raise ScenarioFailed(f"{what} is {actual!r}, expected {expected!r}")


# ---------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------


def function_chaining(s: Scenario) -> None:
    """pysdk_chain runs three activities in sequence: "start" -> "start-one-two-three"."""
    instance_id = s.client.schedule_new_orchestration(
        pysdk_chain, input="start", instance_id=s.instance_id()
    )
    state = s.wait(instance_id)
    expect_status(state, client.OrchestrationStatus.COMPLETED)
    expect_equal("name", state.name, "pysdk_chain")
    expect_equal("input", state.get_input(), "start")
    expect_equal("output", state.get_output(), "start-one-two-three")


def fan_out_fan_in(s: Scenario) -> None:
    """pysdk_fan_out_fan_in squares 1..10 in parallel activities and sums them (385)."""
    instance_id = s.client.schedule_new_orchestration(
        pysdk_fan_out_fan_in, input=10, instance_id=s.instance_id()
    )
    expected = [n * n for n in range(1, 11)]
    expect_equal(
        "output", s.completed_output(instance_id), {"squares": expected, "sum": sum(expected)}
    )


def external_event_received(s: Scenario) -> None:
    """The client raises `pysdk_go` to a waiting orchestration; it returns the payload."""
    instance_id = s.client.schedule_new_orchestration(
        pysdk_wait_for_event, instance_id=s.instance_id()
    )
    s.wait_started(instance_id)
    payload = {"approver": "Ada", "amount": 42}
    s.client.raise_orchestration_event(instance_id, "pysdk_go", data=payload)
    expect_equal("output", s.completed_output(instance_id), {"received": payload})


def external_event_timeout(s: Scenario) -> None:
    """No event comes: a 1 s durable timer wins when_any, so the result is "timed out"."""
    started = time.monotonic()
    instance_id = s.client.schedule_new_orchestration(
        pysdk_approval_with_timeout, input=1.0, instance_id=s.instance_id()
    )
    expect_equal("output", s.completed_output(instance_id), "timed out")
    elapsed = time.monotonic() - started
    if elapsed < 1.0:
        raise ScenarioFailed(f"the 1 s timeout won after only {elapsed:.3f} s")


def durable_timer(s: Scenario) -> None:
    """A 1 s durable timer: completes no sooner than 1 s, by wall and orchestration clock."""
    started = time.monotonic()
    instance_id = s.client.schedule_new_orchestration(
        pysdk_timer, input=1.0, instance_id=s.instance_id()
    )
    orchestration_seconds = s.completed_output(instance_id)
    elapsed = time.monotonic() - started
    if elapsed < 1.0:
        raise ScenarioFailed(f"a 1 s timer completed after {elapsed:.3f} s (wall clock)")
    if not isinstance(orchestration_seconds, (int, float)) or orchestration_seconds < 1.0:
        raise ScenarioFailed(
            f"the orchestration clock advanced {orchestration_seconds!r} s across a 1 s timer"
        )


def sub_orchestration(s: Scenario) -> None:
    """pysdk_parent calls pysdk_child (known id) and returns the child's output."""
    parent_id = s.client.schedule_new_orchestration(
        pysdk_parent, input=7, instance_id=s.instance_id()
    )
    child_id = f"{parent_id}-child"
    expected_child_output = {"child": child_id, "squared": 49}
    expect_equal(
        "parent output",
        s.completed_output(parent_id),
        {"parent": parent_id, "child_output": expected_child_output},
    )
    child = s.client.get_orchestration_state(child_id)
    if child is None:
        raise ScenarioFailed(f"the child {child_id} does not exist")
    expect_status(child, client.OrchestrationStatus.COMPLETED)
    expect_equal("child name", child.name, "pysdk_child")
    expect_equal("child input", child.get_input(), 7)
    expect_equal("child output", child.get_output(), expected_child_output)


def continue_as_new(s: Scenario) -> None:
    """pysdk_count_to_three continues as new until it has counted to 3."""
    instance_id = s.client.schedule_new_orchestration(
        pysdk_count_to_three, input=[], instance_id=s.instance_id()
    )
    state = s.wait(instance_id)
    expect_status(state, client.OrchestrationStatus.COMPLETED)
    expect_equal("output", state.get_output(), {"counts": [1, 2, 3]})
    # The instance shows its last execution's input.
    expect_equal("input", state.get_input(), [1, 2, 3])


def suspend_resume(s: Scenario) -> None:
    """An event raised while suspended does not complete it; after resume it does."""
    instance_id = s.client.schedule_new_orchestration(
        pysdk_wait_for_event, instance_id=s.instance_id()
    )
    s.wait_started(instance_id)
    s.client.suspend_orchestration(instance_id, reason="pysdk suspend test")
    s.wait_for_status(instance_id, client.OrchestrationStatus.SUSPENDED)

    s.client.raise_orchestration_event(instance_id, "pysdk_go", data=42)
    # While suspended, the event must not complete it.
    try:
        state = s.client.wait_for_orchestration_completion(
            instance_id, timeout=min(2.0, s.left())
        )
        raise ScenarioFailed(f"it finished while suspended: {describe(state)}")
    except TimeoutError:
        pass
    state = s.client.get_orchestration_state(instance_id)
    if state is None or state.runtime_status != client.OrchestrationStatus.SUSPENDED:
        raise ScenarioFailed(f"after an event while suspended it is {describe(state)}")

    s.client.resume_orchestration(instance_id, reason="pysdk resume test")
    expect_equal("output", s.completed_output(instance_id), {"received": 42})


def terminate(s: Scenario) -> None:
    """Terminating a waiting orchestration: TERMINATED, with the given output."""
    instance_id = s.client.schedule_new_orchestration(
        pysdk_wait_for_event, instance_id=s.instance_id()
    )
    s.wait_started(instance_id)
    reason = {"terminated_by": "pysdk", "reason": "test"}
    s.client.terminate_orchestration(instance_id, output=reason)
    state = s.wait(instance_id)
    expect_status(state, client.OrchestrationStatus.TERMINATED)
    expect_equal("output", state.get_output(), reason)


def entity_signal(s: Scenario) -> None:
    """The client signals pysdk_counter `add` twice; get_entity shows the sum."""
    counter = EntityInstanceId("pysdk_counter", s.instance_id())
    s.client.signal_entity(counter, "add", 5)
    s.client.signal_entity(counter, "add", 7)
    s.entity_state(counter, 12)
    metadata = s.client.get_entity(counter, include_state=True)
    if metadata is None:
        raise ScenarioFailed(f"entity {counter} disappeared")
    expect_equal("entity id", str(metadata.id), str(counter))


def entity_call(s: Scenario) -> None:
    """An orchestration calls pysdk_counter (add, add, get) and returns the results."""
    key = s.instance_id("-counter")
    instance_id = s.client.schedule_new_orchestration(
        pysdk_call_counter, input=key, instance_id=s.instance_id()
    )
    expect_equal("output", s.completed_output(instance_id), [3, 7, 7])
    s.entity_state(EntityInstanceId("pysdk_counter", key), 7)


def entity_lock(s: Scenario) -> None:
    """Two transfers between two locked counters; the second proves the first unlocked."""
    source = EntityInstanceId("pysdk_counter", s.instance_id("-account-a"))
    target = EntityInstanceId("pysdk_counter", s.instance_id("-account-b"))
    s.client.signal_entity(source, "add", 100)
    s.entity_state(source, 100)

    transfer = {"from": source.key, "to": target.key, "amount": 30}
    first = s.client.schedule_new_orchestration(
        pysdk_transfer, input=transfer, instance_id=s.instance_id("-1")
    )
    expect_equal("first transfer's output", s.completed_output(first), {"from": 70, "to": 30})
    # A second critical section on the same entities only runs if the first released them.
    second = s.client.schedule_new_orchestration(
        pysdk_transfer, input=transfer, instance_id=s.instance_id("-2")
    )
    try:
        output = s.completed_output(second)
    except ScenarioFailed as error:
        raise ScenarioFailed(f"second transfer (were the locks released?): {error}") from None
    expect_equal("second transfer's output", output, {"from": 40, "to": 60})
    s.entity_state(source, 40)
    s.entity_state(target, 60)


SCENARIOS: list[Callable[[Scenario], None]] = [
    function_chaining,
    fan_out_fan_in,
    external_event_received,
    external_event_timeout,
    durable_timer,
    sub_orchestration,
    continue_as_new,
    suspend_resume,
    terminate,
    entity_signal,
    entity_call,
    entity_lock,
]

# ---------------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------------


def run_scenario(
    scenario: Callable[[Scenario], None],
    sdk_client: client.TaskHubGrpcClient,
    run_id: str,
    timeout: float,
) -> str | None:
    """Runs one scenario on a thread, bounded by `timeout`; None on success, else why."""
    context = Scenario(
        client=sdk_client,
        prefix=f"pysdk-{run_id}-{scenario.__name__}",
        deadline=time.monotonic() + timeout,
    )
    outcome: list[str | None] = []

    def body() -> None:
        try:
            scenario(context)
            outcome.append(None)
        except ScenarioFailed as error:
            outcome.append(str(error))
        except Exception as error:  # noqa: BLE001 - any error fails the scenario
            outcome.append(f"{type(error).__name__}: {error}")

    thread = threading.Thread(target=body, name=scenario.__name__, daemon=True)
    thread.start()
    # The scenario bounds its own waits; this is the backstop for a call that hangs.
    thread.join(timeout + 5)
    if not outcome:
        return f"did not finish within {timeout:.0f} s"
    return outcome[0]


def make_logger(level: str) -> logging.Logger:
    logger = logging.Logger("pysdk-scenarios")
    logger.setLevel(getattr(logging, level.upper()))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    return logger


def stop_worker(worker: TaskHubGrpcWorker, timeout: float) -> bool:
    """Stops the worker, giving up after `timeout` (a hung backend must not hang us)."""
    stopper = threading.Thread(target=worker.stop, daemon=True)
    stopper.start()
    stopper.join(timeout)
    return not stopper.is_alive()


def main() -> int:
    names = [scenario.__name__ for scenario in SCENARIOS]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", required=True, help="the backend, HOST:PORT")
    parser.add_argument("--taskhub", default="default", help="the `taskhub` metadata header")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per scenario")
    parser.add_argument("--skip", action="append", default=[], choices=names, metavar="NAME")
    parser.add_argument("--only", action="append", default=[], choices=names, metavar="NAME")
    parser.add_argument("--use-work-item-filters", action="store_true")
    parser.add_argument("--log-level", default="WARNING", help="the SDK loggers' level")
    args = parser.parse_args()

    logger = make_logger(args.log_level)
    metadata = [("taskhub", args.taskhub)]
    worker = TaskHubGrpcWorker(host_address=args.address, metadata=metadata, logger=logger)
    for orchestrator in ORCHESTRATORS:
        worker.add_orchestrator(orchestrator)
    for activity in ACTIVITIES:
        worker.add_activity(activity)
    for entity in ENTITIES:
        worker.add_entity(entity)
    if args.use_work_item_filters:
        worker.use_work_item_filters()
    sdk_client = client.TaskHubGrpcClient(
        host_address=args.address, metadata=metadata, logger=logger
    )

    run_id = uuid.uuid4().hex[:8]
    passed = failed = 0
    worker.start()
    try:
        for scenario in SCENARIOS:
            name = scenario.__name__
            if name in args.skip or (args.only and name not in args.only):
                print(f"SKIP {name}", flush=True)
                continue
            why = run_scenario(scenario, sdk_client, run_id, args.timeout)
            if why is None:
                print(f"PASS {name}", flush=True)
                passed += 1
            else:
                print(f"FAIL {name}: {' '.join(why.split())}", flush=True)
                failed += 1
    finally:
        print(f"SUMMARY passed={passed} failed={failed}", flush=True)
        stopped = stop_worker(worker, timeout=15)
    code = 0 if failed == 0 else 1
    if not stopped:
        # The worker's (non-daemon) thread is stuck on the backend: leave without it.
        logger.warning("the worker did not stop within 15 s; exiting anyway")
        sys.stderr.flush()
        os._exit(code)
    sdk_client.close()
    return code


if __name__ == "__main__":
    sys.exit(main())

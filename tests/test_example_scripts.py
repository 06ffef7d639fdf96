"""examples/follow_results.py and examples/watch_stages.py speak the protocol from docs/protocol.md alone:
they print what is published while they run, what the journal holds from before, and what their SUB
socket missed, against a real broker and test worker."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bus.client import BusClient
from bus.schema import StageChange
from tests.conftest import REPO, BusSite, Processes, free_port, kill_all, wait_for
from tests.test_reliability import client_for, wait_workers

EXAMPLES = REPO / "examples"
FOLLOW_RESULTS = EXAMPLES / "follow_results.py"
WATCH_STAGES = EXAMPLES / "watch_stages.py"
SCRIPT_TIMEOUT_S = 20.0
"""--timeout-s given to the scripts; the tests expect them to finish well before it."""
SOURCE = "void dgemm(int n, const double *a, const double *b, double *c) { /* not run by the test worker */ }\n"


def script_args(script: Path, site: BusSite, *extra: str, deaf_sub: bool = False) -> list[str]:
    # A deaf SUB connects where nobody publishes: every event must then come from the journal.
    event_endpoint = f"tcp://127.0.0.1:{free_port()}" if deaf_sub else site.bus_config.event_endpoint
    return [
        sys.executable, str(script),
        "--request-endpoint", site.bus_config.request_endpoint,
        "--event-endpoint", event_endpoint,
        "--heartbeat-interval-s", str(site.bus_config.heartbeat_interval_s),
        "--timeout-s", str(SCRIPT_TIMEOUT_S),
        *extra,
    ]  # fmt: skip


class Running:
    """A script started in the background, its stdout and stderr in files."""

    def __init__(self, args: list[str], workdir: Path, name: str) -> None:
        self.stdout_path, self.stderr_path = workdir / f"{name}.out", workdir / f"{name}.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=err)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_until_logged(self, text: str) -> None:
        wait_for(lambda: text in self.stderr() or self.process.poll() is not None, 15, f"{text!r} on stderr")
        assert text in self.stderr(), self.stderr()

    def finish(self) -> list[dict[str, Any]]:
        """Wait for a clean exit; the printed JSON lines."""
        try:
            code = self.process.wait(SCRIPT_TIMEOUT_S + 10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
        assert code == 0, f"exit {code}\nstderr: {self.stderr()}"
        return [json.loads(line) for line in self.stdout_path.read_text().splitlines()]


@pytest.fixture
def running() -> Any:
    started: list[Running] = []

    def start(args: list[str], workdir: Path, name: str) -> Running:
        started.append(Running(args, workdir, name))
        return started[-1]

    yield start
    kill_all([script.process for script in started])


def submit_and_wait(site: BusSite, problems: list[str]) -> list[str]:
    """Submit one candidate per problem and wait for every result; their candidate ids."""
    with client_for(site, name="submitter") as client:
        wait_workers(client, 1)
        ids = [client.submit(problem=problem, size=64, source=SOURCE).candidate_id for problem in problems]
        assert len(client.wait_results(ids, timeout_s=15)) == len(ids)
    return ids


def publish_stages(site: BusSite, *changes: tuple[str, int]) -> None:
    """Publish (problem, to_stage) stage changes and wait until the broker journaled them."""
    with BusClient(site.bus_config, site.client_config, name="fake-archive", results=False) as archive:
        for problem, to_stage in changes:
            archive.publish(StageChange, problem=problem, from_stage=to_stage - 1, to_stage=to_stage, reason="test")
        assert archive.flush(timeout_s=10)


# ---------------------------------------------------------------- follow_results.py


@pytest.mark.parametrize("deaf_sub", [False, True], ids=["live", "recovered"])
def test_follow_results_prints_the_results_of_its_problem_published_while_it_runs(
    site: BusSite, processes: Processes, running: Any, deaf_sub: bool
) -> None:
    processes.broker()
    processes.worker("w1")
    args = script_args(FOLLOW_RESULTS, site, "--problem", "dgemm", "--count", "2", deaf_sub=deaf_sub)
    follower = running(args, site.workdir, "follow")
    follower.wait_until_logged("in sync at bus_seq 0")
    # dgemm_small first: its topic starts with result.dgemm, and must not be printed.
    first = submit_and_wait(site, ["dgemm_small", "dgemm"])
    second = submit_and_wait(site, ["dgemm"])
    printed = follower.finish()
    assert [r["candidate_id"] for r in printed] == [first[1], second[0]]
    assert all(r["kind"] == "result" and r["problem"] == "dgemm" and r["bencher_id"] == "w1" for r in printed)
    assert [r["topic_seq"] for r in printed] == [1, 2]
    assert "from the journal, 0 lost" in follower.stderr()
    if deaf_sub:  # (live, a slow-joining SUB may also make it recover some)
        assert "printed 2 result(s): 2 recovered from the journal" in follower.stderr()


def test_follow_results_since_0_first_prints_every_journaled_result_of_every_problem(
    site: BusSite, processes: Processes, running: Any
) -> None:
    processes.broker()
    processes.worker("w1")
    before = submit_and_wait(site, ["dgemm", "stencil", "dgemm"])
    follower = running(script_args(FOLLOW_RESULTS, site, "--since", "0", "--count", "4"), site.workdir, "since")
    follower.wait_until_logged("in sync at bus_seq 3")
    after = submit_and_wait(site, ["stencil"])
    printed = follower.finish()
    assert [r["candidate_id"] for r in printed] == before + after
    assert [r["bus_seq"] for r in printed] == [1, 2, 3, 4]
    assert [(r["problem"], r["topic_seq"]) for r in printed] == [
        ("dgemm", 1),
        ("stencil", 1),
        ("dgemm", 2),
        ("stencil", 2),
    ]


def test_follow_results_exits_1_when_the_count_is_not_reached_in_time(site: BusSite, processes: Processes) -> None:
    processes.broker()
    args = script_args(FOLLOW_RESULTS, site, "--count", "1")
    args[args.index("--timeout-s") + 1] = "1"
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert "timed out after 1 s with 0 of 1 results" in done.stderr


# ---------------------------------------------------------------- watch_stages.py


@pytest.mark.parametrize("deaf_sub", [False, True], ids=["live", "recovered"])
def test_watch_stages_prints_each_problems_current_stage_then_later_changes(
    site: BusSite, processes: Processes, running: Any, deaf_sub: bool
) -> None:
    processes.broker()
    publish_stages(site, ("dgemm", 1), ("dgemm", 2), ("stencil", 1))
    watcher = running(script_args(WATCH_STAGES, site, "--count", "2", deaf_sub=deaf_sub), site.workdir, "watch")
    watcher.wait_until_logged("snapshot of 2 problem(s) at bus_seq 3")
    publish_stages(site, ("dgemm", 3), ("stencil", 2))
    printed = watcher.finish()
    assert [(e["kind"], e["problem"], e["to_stage"]) for e in printed] == [
        ("stage_change", "dgemm", 2),  # the snapshot: each problem's newest stage change, by bus_seq
        ("stage_change", "stencil", 1),
        ("stage_change", "dgemm", 3),  # then the changes, as they happen
        ("stage_change", "stencil", 2),
    ]
    assert [e["bus_seq"] for e in printed] == [2, 3, 4, 5]
    assert "current stage of 2 problem(s) and 2 change(s)" in watcher.stderr()
    if deaf_sub:
        assert "2 recovered from the journal, 0 lost" in watcher.stderr()


def test_watch_stages_count_0_prints_the_snapshot_of_one_problem_and_exits(site: BusSite, processes: Processes) -> None:
    processes.broker()
    publish_stages(site, ("dgemm", 1), ("dgemm_small", 1), ("dgemm", 2))
    args = script_args(WATCH_STAGES, site, "--problem", "dgemm", "--count", "0")
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(e["problem"], e["to_stage"], e["topic_seq"]) for e in printed] == [("dgemm", 2, 2)]


# ---------------------------------------------------------------- standing alone

BUS_FOLLOW = EXAMPLES / "bus_follow.py"
"""The follower the two scripts share: their only import that is neither pyzmq, msgpack nor the stdlib."""


@pytest.mark.parametrize("script", [FOLLOW_RESULTS, WATCH_STAGES, BUS_FOLLOW], ids=lambda path: path.name)
def test_example_scripts_import_nothing_but_pyzmq_msgpack_and_the_standard_library(script: Path) -> None:
    tree = ast.parse(script.read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    shared = {BUS_FOLLOW.stem} if script != BUS_FOLLOW else set()
    foreign = sorted(imported - set(sys.stdlib_module_names) - {"zmq", "msgpack"} - shared)
    assert not foreign, f"{script.name} must stand alone, but imports {foreign}"


@pytest.mark.parametrize("script", [FOLLOW_RESULTS, WATCH_STAGES], ids=lambda path: path.name)
def test_example_scripts_find_their_shared_module_from_any_working_directory(script: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--timeout-s", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"{script.stem}: --heartbeat-interval-s and --timeout-s must be > 0\n"

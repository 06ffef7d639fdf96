"""What the bus benchmark measures with: its processes (started, CPU-accounted, always stopped),
the two sites it talks to (raw pyzmq echo workers; a broker with test workers) and the drivers
that push round trips through them. `ops/perf_bus.py` runs the measurements and reports."""

from __future__ import annotations

import logging
import math
import os
import resource
import signal
import struct
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Final, Protocol

import zmq
from zmq.utils.monitor import recv_monitor_message

from bus import metrics
from bus.client import BusClient
from bus.config import BusConfig, ClientConfig
from bus.schema import Verdict
from bus.test_worker import DETAIL as TEST_WORKER_DETAIL
from ops.processes import free_port

log = logging.getLogger(__name__)

REPO: Final = Path(__file__).resolve().parent.parent
HPCRL: Final = (sys.executable, "-m", "ops.cli")

MESSAGE_BYTES: Final = 4096
"""Payload of every round trip: the raw message, and the candidate's `source` (its result carries
the source back, so both directions move about 4 KiB in both paths)."""
PROBLEM: Final = "dgemm"
SOURCE: Final = ("/* hpcrl perf bus: 4 KiB of candidate source */\n" + "x" * MESSAGE_BYTES)[:MESSAGE_BYTES]


START_TIMEOUT_S: Final = 60.0
"""Longest wait for processes to start and connect (500 workers included)."""
STALL_TIMEOUT_S: Final = 10.0
"""A measurement with no completed round trip for this long fails: something is lost or stuck."""
DRAIN_TIMEOUT_S: Final = 30.0
"""Longest wait for the round trips still in flight when a measurement ends."""
SWARM_TIMEOUT_S: Final = 120.0
"""Longest wait for all candidates of the fan-out run."""
STOP_TIMEOUT_S: Final = 15.0
"""SIGTERM, then this long to exit cleanly, then SIGKILL."""
POLL_SLICE_S: Final = 0.1
"""Longest single wait inside a measurement loop, so deadlines are checked often."""
OPEN_FILES_WANTED: Final = 8192
"""RLIMIT_NOFILE raised to (soft limit, inherited by every process started): 500 connections."""


class PerfError(RuntimeError):
    """The benchmark could not produce a valid figure; the message says what went wrong."""


# ---------------------------------------------------------------- processes


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any HPCRL_* setting, plus `overrides`: every process of
    the benchmark is configured only by the benchmark."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCRL_")}
    env.update(PYTHONUNBUFFERED="1", **overrides)
    return env


class Processes:
    """Starts the benchmark's processes (logs in the work dir) and guarantees they are gone."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stopped: set[int] = set()
        """Pids this benchmark stopped on purpose (their exit is no failure)."""

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{name}.log", "wb") as log_file:
            process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        self.started.append((name, process))
        return process

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.pid not in self.stopped and process.poll() is not None:
                raise PerfError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def stop(self, processes: list[subprocess.Popen[bytes]] | None = None) -> dict[int, int | None]:
        """SIGTERM the given processes (default: all), wait, SIGKILL what is left. Returns pid -> exit code."""
        chosen = [p for _, p in self.started if processes is None or p in processes]
        self.stopped.update(p.pid for p in chosen)
        for process in chosen:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        codes: dict[int, int | None] = {}
        for process in chosen:
            try:
                codes[process.pid] = process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("process did not stop in time pid=%d: killing it", process.pid)
                process.kill()
                process.wait(STOP_TIMEOUT_S)
                codes[process.pid] = None
        return codes

    def log_text(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, name: str, lines: int = 20) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:])


def process_stat(pid: int) -> Path:
    """/proc file of a process's CPU time, every thread included (zmq's I/O thread too)."""
    return Path(f"/proc/{pid}/stat")


def main_thread_stat(pid: int) -> Path:
    """/proc file of the CPU time of a process's main thread only (where Python runs the loop)."""
    return Path(f"/proc/{pid}/task/{pid}/stat")


def cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds so far of the process or thread whose /proc stat file this is."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CpuRoles = dict[str, list[Path]]
"""Role ("client", "broker", ...) -> /proc stat files whose CPU time is charged to it. A role named
`*_main_thread` is a part of another role and is left out of totals."""


def cpu_snapshot(roles: CpuRoles) -> dict[str, float]:
    return {role: sum(cpu_seconds(stat) for stat in stats) for role, stats in roles.items()}


def raise_open_files_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(OPEN_FILES_WANTED, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return soft, hard


# ---------------------------------------------------------------- sites: what a measurement talks to


class RawSite:
    """The raw anchor: this process binds a PUSH and a PULL; echo workers connect to both."""

    def __init__(self, procs: Processes, processes: int, connections: int) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context.instance()
        self.push = self._socket(zmq.PUSH)
        self.pull = self._socket(zmq.PULL)
        dispatch, collect = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        self.push.bind(dispatch)
        self.pull.bind(collect)
        monitors = [s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED) for s in (self.push, self.pull)]
        echo = [sys.executable, "-m", "ops.perf_bus", "echo", "--dispatch", dispatch, "--collect", collect]
        echoes = [
            procs.start(f"raw-echo-{p}", [*echo, "--connections", str(connections)], clean_env())
            for p in range(processes)
        ]
        self.cpu_roles: CpuRoles = {"workers": [process_stat(e.pid) for e in echoes]}
        try:
            _await_handshakes(monitors, processes * connections, procs)
        finally:
            for monitor in monitors:
                monitor.close(linger=0)

    def _socket(self, kind: int) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 100_000)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        return sock

    def close(self) -> None:
        self.push.close()
        self.pull.close()


def _await_handshakes(monitors: list[zmq.Socket[Any]], count: int, procs: Processes) -> None:
    """Wait until every monitored socket has completed `count` handshakes (every peer connected)."""
    seen = [0] * len(monitors)
    deadline = time.monotonic() + START_TIMEOUT_S
    while min(seen) < count:
        if time.monotonic() > deadline:
            raise PerfError(f"only {min(seen)} of {count} raw echo connections came up in {START_TIMEOUT_S:g} s")
        procs.check_alive()
        for index, monitor in enumerate(monitors):
            if monitor.poll(int(POLL_SLICE_S * 1000)):
                if recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    seen[index] += 1


class BrokerSite:
    """`hpcrl bus` with a fresh journal, worker processes, and one BusClient of this process."""

    def __init__(
        self,
        procs: Processes,
        name: str,
        processes: int,
        connections: int,
        keys_dir: Path | None = None,
        metrics_port: int = 0,
        profile_path: Path | None = None,
    ) -> None:
        self.procs = procs
        self.name = name
        self.metrics_port = metrics_port
        self.closed = False
        request, event = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        common = dict(HPCRL_BUS__REQUEST_ENDPOINT=request, HPCRL_BUS__EVENT_ENDPOINT=event)
        broker_env, client_env = clean_env(**common), clean_env(**common)
        client_keys: dict[str, str] = {}
        if keys_dir is not None:
            broker_env.update(
                HPCRL_BUS__SECRET_KEY_FILE=str(keys_dir / "broker.key_secret"),
                HPCRL_BROKER__ALLOWED_KEYS_DIR=str(keys_dir / "allowed"),
            )
            client_keys = dict(
                secret_key_file=str(keys_dir / "client.key_secret"),
                broker_public_key_file=str(keys_dir / "broker.key"),
            )
            client_env.update({f"HPCRL_BUS__{k.upper()}": v for k, v in client_keys.items()})
        broker_argv = [*HPCRL, "bus", "--journal", str(procs.workdir / f"{name}-journal.sqlite")]
        if metrics_port:
            broker_argv += ["--metrics-port", str(metrics_port)]
        if profile_path is not None:
            broker_argv = [sys.executable, "-m", "ops.perf_bus", "profile", str(profile_path), *broker_argv[3:]]
        self.broker = procs.start(f"{name}-broker", broker_argv, broker_env)
        self.workers = [
            procs.start(
                f"{name}-worker-{p}",
                [*HPCRL, "test-worker", "--name", f"{name}-w{p}", "--connections", str(connections), "--delay-s", "0"],
                client_env,
            )
            for p in range(processes)
        ]
        self.bus = BusClient(
            BusConfig(
                request_endpoint=request,
                event_endpoint=event,
                secret_key_file=client_keys.get("secret_key_file", ""),
                broker_public_key_file=client_keys.get("broker_public_key_file", ""),
            ),
            ClientConfig(),
            name=f"perf-{name}",
        )
        self.await_workers(processes * connections)

    def await_workers(self, count: int) -> float:
        """Wait until the broker's heartbeat reports `count` live workers; returns the seconds waited."""
        started = time.monotonic()
        while self.bus.workers_alive < count:
            if time.monotonic() - started > START_TIMEOUT_S:
                raise PerfError(
                    f"{self.name}: {self.bus.workers_alive} of {count} workers connected after {START_TIMEOUT_S:g} s"
                    f"\n{self.procs.log_tail(f'{self.name}-broker')}"
                )
            self.procs.check_alive()
            self.bus.pump(POLL_SLICE_S)
        return time.monotonic() - started

    @property
    def cpu_roles(self) -> CpuRoles:
        return {
            "broker": [process_stat(self.broker.pid)],
            "broker_main_thread": [main_thread_stat(self.broker.pid)],
            "workers": [process_stat(w.pid) for w in self.workers],
        }

    def scrape(self) -> dict[str, float]:
        """One Prometheus scrape of the broker (needs metrics_port)."""
        try:
            return metrics.scrape(self.metrics_port)
        except OSError as error:
            raise PerfError(
                f"{self.name}: cannot scrape the broker's metrics on port {self.metrics_port}: {error}"
            ) from None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bus.close(timeout_s=1.0)


# ---------------------------------------------------------------- drivers: one round trip, two ways


class Driver(Protocol):
    """Sends round trips and reports the ones that came back; the measurements are written once
    against this, so raw and broker run through the very same loops."""

    outstanding: OrderedDict[Any, float]
    """Key of every round trip in flight -> time.monotonic() it was sent."""
    completed: int
    invalid: int
    """Round trips that came back wrong (payload, verdict): any makes the measurement invalid."""

    def send(self) -> None: ...

    def wait(self, timeout_s: float) -> list[float]:
        """Wait up to timeout_s for round trips; returns the round-trip seconds of those completed."""
        ...


class RawDriver:
    def __init__(self, site: RawSite) -> None:
        self.push, self.pull = site.push, site.pull
        self.outstanding: OrderedDict[int, float] = OrderedDict()
        self.completed = self.invalid = 0
        self._seq = 0
        self._padding = bytes(MESSAGE_BYTES - 8)

    def send(self) -> None:
        self._seq += 1
        self.push.send(struct.pack("<Q", self._seq) + self._padding, copy=True)
        self.outstanding[self._seq] = time.monotonic()

    def wait(self, timeout_s: float) -> list[float]:
        if not self.pull.poll(math.ceil(timeout_s * 1000)):
            return []
        round_trips: list[float] = []
        while True:
            try:
                message = self.pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                return round_trips
            now = time.monotonic()
            sent_at = self.outstanding.pop(struct.unpack_from("<Q", message)[0], None)
            if sent_at is None or len(message) != MESSAGE_BYTES:
                self.invalid += 1
                continue
            self.completed += 1
            round_trips.append(now - sent_at)


class BrokerDriver:
    """Round trips through the client library: BusClient.submit, then BusClient.wait_results."""

    def __init__(self, site: BrokerSite) -> None:
        self.bus = site.bus
        self.outstanding: OrderedDict[str, float] = OrderedDict()
        self.completed = self.invalid = 0

    def send(self) -> None:
        candidate = self.bus.submit(problem=PROBLEM, size=256, source=SOURCE, run="perf")
        self.outstanding[candidate.candidate_id] = time.monotonic()

    def wait(self, timeout_s: float) -> list[float]:
        if not self.outstanding:
            self.bus.pump(timeout_s)
            return []
        results = self.bus.collect_results(timeout_s)
        now = time.monotonic()
        round_trips = []
        for cid, result in results.items():
            sent_at = self.outstanding.pop(cid, None)
            honest = result.verdict is Verdict.INFRA_ERROR and result.detail == TEST_WORKER_DETAIL
            if sent_at is not None and honest and result.source == SOURCE:
                self.completed += 1
            else:
                self.invalid += 1
            if sent_at is not None:
                round_trips.append(now - sent_at)
        return round_trips


def drain(driver: Driver, timeout_s: float = DRAIN_TIMEOUT_S) -> list[float]:
    """Wait for every round trip in flight; fail if any does not come back."""
    round_trips: list[float] = []
    deadline = time.monotonic() + timeout_s
    while driver.outstanding:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PerfError(f"{len(driver.outstanding)} round trips did not come back within {timeout_s:g} s")
        round_trips += driver.wait(min(POLL_SLICE_S, remaining))
    return round_trips

"""The local demos' child processes: `hpcrl` subcommands started with their logs in the run directory,
watched for an early exit (reported with the fix when we know it), and stopped in reverse order.

Each child may be pinned to CPUs with `taskset` (util-linux, on every Debian system), so a bencher's
measurements and the trainer's generation do not take turns on the same core.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Collection, Mapping
from pathlib import Path

HPCRL = (sys.executable, "-m", "ops.cli")
"""The `hpcrl` command of this interpreter (the venv's, whatever PATH says)."""
SETUP_FIX = "./quickstart setup installs bubblewrap (the bencher's sandbox) and the other system packages"
EXTRAS_FIX = "./quickstart setup installs the extras (or: .venv/bin/pip install -e '.[archive,train]')"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Children:
    """`hpcrl` subcommands running under this process, by name; logs in `run_dir/<name>.log`."""

    def __init__(self, run_dir: Path, env: Mapping[str, str]) -> None:
        self.run_dir = run_dir
        self.env = dict(env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *arguments: str, cpus: Collection[int] = ()) -> None:
        """Start `hpcrl ARGUMENTS...` as `name`, on `cpus` only when given (and taskset exists)."""
        pin = ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus)))] if cpus and shutil.which("taskset") else []
        with open(self.log(name), "wb") as log:
            self.processes[name] = subprocess.Popen(
                [*pin, *HPCRL, *arguments], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def log(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def running(self, name: str) -> bool:
        return name in self.processes and self.processes[name].poll() is None

    def exit_code(self, name: str) -> int | None:
        return self.processes[name].poll()

    def dead(self, expected_to_exit: Collection[str] = ()) -> str | None:
        """Why the run cannot go on if a process has exited (with the fix when we know it), else None.
        A process in `expected_to_exit` may exit with status 0."""
        for name, process in self.processes.items():
            code = process.poll()
            if code is None or (code == 0 and name in expected_to_exit):
                continue
            log = self.log(name)
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            missing_package = next((line for line in lines if "needs the Python package" in line), None)
            if missing_package is not None:
                return f"the {name} could not start (exit status {code}): {missing_package}\n  fix: {EXTRAS_FIX}"
            reason = next((line.split("error=", 1)[-1] for line in lines if "event=cannot_" in line), None)
            if reason is None:
                tail = "\n    ".join(lines[-5:])
                return f"{name} exited with status {code}; the end of its log ({log}):\n    {tail}"
            message = f"the {name} could not start (exit status {code}): {reason}"
            if name.startswith("bencher") and ("not found" in reason or "not installed" in reason):
                message += f"\n  fix: {SETUP_FIX}"
            return message + f"\n  log: {log}"
        return None

    def stop(self, names: Collection[str], timeout_s: float) -> None:
        """SIGTERM `names` and wait for them (killing what does not stop in time)."""
        for name in names:
            if self.running(name):
                self.processes[name].send_signal(signal.SIGTERM)
        for name in names:
            try:
                self.processes[name].wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.processes[name].kill()
                self.processes[name].wait()

    def stop_all(self, timeout_s: float) -> dict[str, int]:
        """Stop every process, one at a time, the last started first (clients before the broker they
        talk to, so a bencher's drained result still reaches it); their exit codes, by name."""
        names = list(reversed(self.processes))
        for name in names:
            self.stop([name], timeout_s)
        return {name: self.processes[name].returncode for name in names}

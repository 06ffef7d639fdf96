"""The systemd units in ops/systemd: systemd accepts them without a warning, they keep what the daemons rely
on (SIGTERM first and time to drain, restarts on crashes only, hardening that the bencher's sandbox
survives), and their ExecStart lines really start the daemons and stop them cleanly.

systemd is not PID 1 on a test machine, so units are never started: `systemd-analyze verify` and
`systemd-analyze security --offline=yes` read the files, and the command lines are run directly with the
unit's environment and KillSignal. systemd-analyze needs every ExecStart binary to exist, so the checks run
on a copy of the units whose ExecStart names this venv's `hpcrl` instead of the installed one."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bencher.config import BencherConfig
from bencher.sandbox import DRAIN_GRACE_S, SETUP_GRACE_S
from ops.cli import SUBCOMMANDS
from tests.conftest import REPO, free_port, kill_all, tool_missing, wait_for

UNIT_DIR = REPO / "ops" / "systemd"
INSTALLED_HPCRL = "/opt/hpcrl/.venv/bin/hpcrl"
"""Where the shipped units expect the install (docs/operations.md): a clone in /opt/hpcrl, its venv in .venv."""
SHARED_CONFIG = "/etc/hpcrl/hpcrl.toml"
SHARED_ENV = "/etc/hpcrl/hpcrl.env"
CONFIG_ERROR_EXIT = 2
"""What every daemon exits with on a configuration error (argparse's exit status): restarting cannot help."""

DAEMONS = {
    "hpcrl-bus.service": "bus",
    "hpcrl-archive.service": "archive",
    "hpcrl-bencher@.service": "bencher",
    "hpcrl-trainer.service": "train",
}
"""Every unit file and the hpcrl subcommand it runs."""
BENCHER_INSTANCE = "hpcrl-bencher@0-3.service"
"""A template cannot be verified alone (systemd instantiates it as `@i`, and `CPUAffinity=i` does not
parse), so the checks use an instance."""
VERIFIED = ["hpcrl-bus.service", "hpcrl-archive.service", BENCHER_INSTANCE, "hpcrl-trainer.service"]
EXPOSURE_LIMITS = {
    "hpcrl-bus.service": 2.0,
    "hpcrl-archive.service": 2.0,
    BENCHER_INSTANCE: 5.0,
    "hpcrl-trainer.service": 3.0,
}
"""Gates on `systemd-analyze security`'s exposure (0 best, 10 worst), with some room above what systemd 252
reports (1.1, 1.1, 4.0, 2.0). The bencher keeps root's uid switch and all namespaces for its sandbox; the
trainer keeps the GPU devices."""
BWRAP_NAMESPACES = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"}
"""The namespaces `bwrap --unshare-all --unshare-user` creates."""
SANDBOX_CAPABILITIES = {"CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_KILL"}
"""What bencher/sandbox.py does as root: switch to sandbox_uid (setuid, setgid), hand each run's host dir to it
(chown, then chmod as a non-owner: fowner), read and remove what that uid wrote (dac_override) and SIGKILL its
processes (kill). Each one was found necessary by running `hpcrl bench-file` without it."""
BWRAP_SYSCALLS = {"clone", "unshare", "setns", "mount", "umount2", "pivot_root", "setresuid", "setgroups", "prctl"}
"""System calls the sandbox's set-up makes (bwrap's namespaces and mounts, Popen's uid switch, seccomp load)."""
STOP_WAIT_S = 15.0
"""The test's own bound on a daemon's exit after SIGTERM when idle (the units allow 30 s and more)."""

Unit = dict[str, dict[str, list[str]]]
"""section -> key -> every value assigned, in order (systemd keys such as SystemCallFilter= accumulate)."""


def parse_unit(text: str) -> Unit:
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert section is not None and sep, f"not KEY=VALUE inside a section: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def load(name: str) -> Unit:
    return parse_unit((UNIT_DIR / name).read_text())


def value(unit: Unit, key: str, section: str = "Service") -> str | None:
    """The effective value of a single-valued key: the last assignment."""
    values = unit.get(section, {}).get(key)
    return values[-1] if values else None


def words(unit: Unit, key: str) -> list[str]:
    """A list-valued key: every assignment's words, an empty assignment resetting the list."""
    result: list[str] = []
    for assignment in unit["Service"].get(key, []):
        result = [] if not assignment else [*result, *assignment.split()]
    return result


def seconds(span: str) -> float:
    """A systemd time span ("45s", "10min", "1min 30s") in seconds."""
    scale = {"ms": 0.001, "": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts, f"not a time span: {span!r}"
    return sum(float(number) * scale[unit] for number, unit in parts)


def exec_start(unit: Unit) -> list[str]:
    line = value(unit, "ExecStart")
    assert line, "no ExecStart="
    return shlex.split(line)


def local_hpcrl() -> Path:
    """This venv's `hpcrl` console script: the executable that stands in for the installed one."""
    path = Path(sys.executable).parent / "hpcrl"
    if not path.is_file():
        tool_missing(f"{path} does not exist: install the project into the venv (pip install -e .)")
    return path


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        tool_missing("systemd-analyze is not installed (apt-get install systemd)")
    return path


@pytest.fixture(scope="module")
def unit_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units with ExecStart pointing at this venv's hpcrl (everything else byte for byte)."""
    directory = tmp_path_factory.mktemp("units")
    for name in DAEMONS:
        text = (UNIT_DIR / name).read_text()
        (directory / name).write_text(text.replace(INSTALLED_HPCRL, str(local_hpcrl())))
    return directory


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([systemd_analyze(), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


# ---------------------------------------------------------------------------------------------- systemd's view


def test_the_unit_directory_holds_exactly_the_checked_units() -> None:
    assert sorted(path.name for path in UNIT_DIR.glob("*.service")) == sorted(DAEMONS)


@pytest.mark.parametrize("name", [*VERIFIED, "hpcrl-bencher@0\\x2c2.service"])
def test_systemd_analyze_verify_accepts_every_unit_without_a_word(unit_copy: Path, name: str) -> None:
    # Unknown keys and unparsable values are only warnings with exit status 0: any output is a failure.
    run = analyze("verify", "--man=no", "--recursive-errors=no", f"./{name}", cwd=unit_copy)
    assert (run.returncode, run.stdout + run.stderr) == (0, "")


def test_a_bencher_instance_name_that_is_no_cpu_set_is_refused(unit_copy: Path) -> None:
    run = analyze("verify", "--man=no", "--recursive-errors=no", "./hpcrl-bencher@cores.service", cwd=unit_copy)
    assert run.returncode != 0
    assert "CPU affinity 'cores'" in run.stdout + run.stderr


@pytest.mark.parametrize("name", VERIFIED)
def test_security_exposure_stays_within_its_gate(unit_copy: Path, name: str) -> None:
    limit = EXPOSURE_LIMITS[name]
    # --threshold is on systemd's internal scale, 10 times the one it prints.
    threshold = f"--threshold={limit * 10:.0f}"
    run = analyze("security", "--offline=yes", "--no-pager", threshold, f"./{name}", cwd=unit_copy)
    if "unrecognized option" in run.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", run.stdout)
    assert match, run.stdout + run.stderr
    print(f"{name}: exposure {match.group(1)} (gate {limit})")
    assert float(match.group(1)) <= limit
    assert run.returncode == 0, run.stderr


def test_the_bencher_syscall_filter_admits_what_the_sandbox_calls(unit_copy: Path) -> None:
    allowed: set[str] = set()
    for item in words(load("hpcrl-bencher@.service"), "SystemCallFilter"):
        assert not item.startswith("~"), "a deny-list would be inherited by bwrap: keep the filter an allow-list"
        allowed |= expand_syscall_group(item, unit_copy) if item.startswith("@") else {item}
    assert not BWRAP_SYSCALLS - allowed


def expand_syscall_group(group: str, cwd: Path) -> set[str]:
    run = analyze("syscall-filter", "--no-pager", group, cwd=cwd)
    assert run.returncode == 0, run.stderr
    names: set[str] = set()
    for line in run.stdout.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            names |= expand_syscall_group(item, cwd) if item.startswith("@") else {item}
    return names


# ------------------------------------------------------------------------------------------ the unit files


@pytest.mark.parametrize("name", DAEMONS)
def test_exec_start_runs_its_daemon_with_the_shared_config(name: str) -> None:
    argv = exec_start(load(name))
    assert argv[0] == INSTALLED_HPCRL
    assert argv[1] in SUBCOMMANDS and argv[1] == DAEMONS[name]
    assert argv[argv.index("--config") + 1] == SHARED_CONFIG


@pytest.mark.parametrize("name", DAEMONS)
def test_settings_come_from_the_shared_environment_file_then_optional_per_unit_files(name: str) -> None:
    files = load(name)["Service"]["EnvironmentFile"]
    assert files[0] == SHARED_ENV
    assert all(path.startswith("-/etc/hpcrl/") for path in files[1:]) and files[1:]


@pytest.mark.parametrize("name", DAEMONS)
def test_a_crash_restarts_the_daemon_but_a_configuration_error_does_not(name: str, tmp_path: Path) -> None:
    unit = load(name)
    assert value(unit, "Restart") == "on-failure"
    assert value(unit, "RestartPreventExitStatus") == str(CONFIG_ERROR_EXIT)
    assert value(unit, "StartLimitBurst", "Unit") and value(unit, "StartLimitIntervalSec", "Unit")
    argv = [str(local_hpcrl()), *exec_start(unit)[1:]]
    argv[argv.index("--config") + 1] = str(tmp_path / "missing.toml")
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == CONFIG_ERROR_EXIT, run.stderr
    assert "does not exist" in run.stderr


@pytest.mark.parametrize("name", DAEMONS)
def test_sigterm_reaches_the_main_process_alone_and_first(name: str) -> None:
    # mixed: SIGTERM to the daemon only (a sandboxed candidate hit by it would be reported as a crash; vLLM's
    # workers must outlive the trainer's checkpoint), SIGKILL to whatever is left after it.
    unit = load(name)
    assert value(unit, "KillMode") == "mixed"
    assert value(unit, "KillSignal") == "SIGTERM"
    assert value(unit, "TimeoutStopSec")


def test_the_bencher_may_drain_and_cancel_before_systemd_kills_it() -> None:
    drain_s = BencherConfig().drain_timeout_s + SETUP_GRACE_S + DRAIN_GRACE_S
    stop_s = seconds(value(load("hpcrl-bencher@.service"), "TimeoutStopSec") or "")
    assert stop_s > drain_s


def test_the_trainer_has_minutes_to_finish_its_step_and_checkpoint() -> None:
    assert seconds(value(load("hpcrl-trainer.service"), "TimeoutStopSec") or "") >= 300


@pytest.mark.parametrize("name", DAEMONS)
def test_every_unit_is_hardened_and_writes_only_hpcrl_state(name: str) -> None:
    unit = load(name)
    for key, wanted in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
    }.items():
        assert value(unit, key) == wanted, f"{name}: {key}={wanted}"
    assert words(unit, "SystemCallFilter"), f"{name}: no SystemCallFilter="
    assert "ReadWritePaths" not in unit["Service"]
    for key in ("StateDirectory", "CacheDirectory"):
        for directory in words(unit, key):
            assert directory == "hpcrl" or directory.startswith("hpcrl/"), f"{name}: {key}={directory}"


@pytest.mark.parametrize("name", ["hpcrl-bus.service", "hpcrl-archive.service", "hpcrl-trainer.service"])
def test_daemons_without_a_sandbox_run_as_hpcrl_with_no_capability(name: str) -> None:
    unit = load(name)
    assert (value(unit, "User"), value(unit, "Group")) == ("hpcrl", "hpcrl")
    assert value(unit, "CapabilityBoundingSet") == ""
    assert value(unit, "StateDirectory") == "hpcrl"
    assert value(unit, "RestrictNamespaces") == "yes"


def test_the_bencher_keeps_what_bwrap_and_the_uid_switch_need() -> None:
    unit = load("hpcrl-bencher@.service")
    assert value(unit, "User") in (None, "root"), "the sandbox switches to sandbox_uid: that takes root"
    assert set(words(unit, "CapabilityBoundingSet")) == SANDBOX_CAPABILITIES
    assert set(words(unit, "RestrictNamespaces")) >= BWRAP_NAMESPACES
    assert "AF_NETLINK" in words(unit, "RestrictAddressFamilies"), "bwrap sets up loopback over rtnetlink"
    # Each of these breaks the sandbox: an unmapped sandbox_uid, or /proc over-mounts that make the kernel
    # refuse bwrap's fresh /proc (reproduced with bind mounts: "Can't mount proc on /newroot/proc").
    for key in ("PrivateUsers", "ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc", "ProcSubset"):
        assert value(unit, key) in (None, "no"), f"{key} breaks the bencher's sandbox"
    assert value(unit, "CPUAffinity") == "%i"
    assert value(unit, "UMask") is None, "the built binary must stay readable by sandbox_uid"


def test_the_trainer_keeps_the_gpu_devices_reachable() -> None:
    unit = load("hpcrl-trainer.service")
    assert value(unit, "PrivateDevices") in (None, "no")
    # Any DeviceAllow= (ProtectClock= adds one) closes the device cgroup to all but the listed devices.
    assert "DeviceAllow" not in unit["Service"] and value(unit, "ProtectClock") in (None, "no")
    assert value(unit, "DevicePolicy") in (None, "auto")
    assert value(unit, "MemoryDenyWriteExecute") in (None, "no"), "CUDA and Triton generate code"


# ------------------------------------------------------------------------------- the command lines, for real


class UnitRunner:
    """Runs a unit's ExecStart as systemd would (environment files aside): Environment= applied with its
    specifiers, the WorkingDirectory, CPUAffinity through taskset, the state and cache directories under tmp."""

    def __init__(self, root: Path, config: Path) -> None:
        self.root = root
        self.config = config
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, instance: str = "") -> tuple[subprocess.Popen[bytes], Path]:
        unit = load(name)
        specifiers = {
            "%i": instance,
            "%H": socket.gethostname(),
            "%S": str(self.root / "state"),
            "%C": str(self.root / "cache"),
        }

        def expand(text: str) -> str:
            for specifier, replacement in specifiers.items():
                text = text.replace(specifier, replacement)
            return text

        for key, base in (("StateDirectory", "state"), ("CacheDirectory", "cache")):
            for directory in words(unit, key):
                (self.root / base / directory).mkdir(parents=True, exist_ok=True)
        env = {key: val for key, val in os.environ.items() if not key.startswith("HPCRL_")}
        for assignment in unit["Service"].get("Environment", []):
            key, _, setting = expand(assignment).partition("=")
            env[key] = setting
        argv = [str(local_hpcrl()), *exec_start(unit)[1:]]
        argv[argv.index("--config") + 1] = str(self.config)
        affinity = value(unit, "CPUAffinity")
        if affinity:
            argv = ["taskset", "-c", expand(affinity), *argv]
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                argv, env=env, cwd=expand(value(unit, "WorkingDirectory") or "/"), stdout=out, stderr=out
            )
        self.started.append(process)
        return process, log

    def cleanup(self) -> None:
        kill_all(self.started)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[UnitRunner]:
    config = tmp_path / "hpcrl.toml"
    config.write_text(
        f'[bus]\nrequest_endpoint = "tcp://127.0.0.1:{free_port()}"\n'
        f'event_endpoint = "tcp://127.0.0.1:{free_port()}"\n'
        "heartbeat_interval_s = 0.2\nlinger_s = 0.2\n"
        "[bencher]\ncalibration_interval_s = 0\n"  # no calibration run at start: the stop below finds it idle
    )
    units = UnitRunner(tmp_path, config)
    try:
        yield units
    finally:
        units.cleanup()


def stop_as_systemd_does(name: str, process: subprocess.Popen[bytes], log: Path) -> None:
    unit = load(name)
    process.send_signal(getattr(signal, value(unit, "KillSignal") or "SIGTERM"))
    started = time.monotonic()
    returncode = process.wait(min(STOP_WAIT_S, seconds(value(unit, "TimeoutStopSec") or "")))
    assert returncode == 0, log.read_text(errors="replace")[-3000:]
    assert time.monotonic() - started < seconds(value(unit, "TimeoutStopSec") or "")


def test_exec_start_lines_start_the_daemons_and_stop_them_cleanly_on_the_kill_signal(runner: UnitRunner) -> None:
    cpu = str(sorted(os.sched_getaffinity(0))[0])
    bus, bus_log = runner.start("hpcrl-bus.service")
    wait_for(lambda: "broker up" in bus_log.read_text(errors="replace"), 20.0, "the broker to start")
    assert (runner.root / "state" / "hpcrl" / "hpcrl-journal.sqlite").exists(), "journal outside the state dir"
    archive, archive_log = runner.start("hpcrl-archive.service")
    bencher, bencher_log = runner.start("hpcrl-bencher@.service", instance=cpu)
    for what, log in (("archive", archive_log), ("bencher", bencher_log)):
        wait_for(lambda: "event=started" in log.read_text(errors="replace"), 20.0, f"the {what} to start")  # noqa: B023
    started = bencher_log.read_text(errors="replace")
    # The instance name picked the cores; the unit's defaults named the bencher and placed its cache.
    assert f"threads=1 cpus={cpu} " in started
    assert f"name=bencher-{socket.gethostname()}-{cpu} " in started
    assert (runner.root / "cache" / "hpcrl" / "bencher" / "results.sqlite").exists()
    stop_as_systemd_does("hpcrl-bencher@.service", bencher, bencher_log)
    stop_as_systemd_does("hpcrl-archive.service", archive, archive_log)
    stop_as_systemd_does("hpcrl-bus.service", bus, bus_log)

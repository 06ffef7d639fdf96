"""A real single-node SLURM cluster on localhost for tests: slurmctld and slurmd in the foreground.

No munge (auth/none), no cgroups (proctrack/linuxproc), CPU pinning by task/affinity, cons_tres with
CR_CPU, free ports, everything under one directory. `stop()` cancels every job, waits for an empty
queue, SIGTERMs both daemons and, as a last resort after a failed test, kills whatever a job left.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ops.processes import free_port
from tests.proc_support import cmdline, descendants, pids

READY_TIMEOUT_S = 30.0
"""Bound on the daemons' start (measured here: about 1 s)."""
DRAIN_QUEUE_TIMEOUT_S = 45.0
"""Bound on the queue emptying after `scancel` (KILL_WAIT_S plus slack)."""
KILL_WAIT_S = 15
"""slurm.conf KillWait: seconds between a cancelled job's SIGTERM and its SIGKILL."""


def slurm_missing() -> str:
    """Why a SLURM cluster cannot run here, or '' when it can."""
    for program in ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol"):
        if shutil.which(program) is None and not Path(f"/usr/sbin/{program}").exists():
            return f"{program} is not installed (Debian: apt-get install slurmctld slurmd slurm-client)"
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (SlurmUser=root, slurmd starts jobs as their users)"
    return ""


def _program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _plugin_dir() -> str:
    for candidate in (
        "/usr/lib/x86_64-linux-gnu/slurm-wlm",
        "/usr/lib/aarch64-linux-gnu/slurm-wlm",
        "/usr/lib64/slurm",
    ):
        if Path(candidate, "auth_none.so").exists():
            return candidate
    return ""


@dataclass
class SlurmCluster:
    """One controller and one node (`localhost`, CPUs = this machine's, one pretend GPU) in partition `debug`."""

    root: Path
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    ctld: subprocess.Popen[bytes] | None = None
    slurmd: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment for client commands (sbatch, squeue, ...): this cluster, no outer job's variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def start(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        plugins = _plugin_dir()
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=hpcrltest",
                    "SlurmctldHost=localhost",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/none",
                    "CredType=cred/none",
                    *([f"PluginDir={plugins}"] if plugins else []),
                    "MpiDefault=none",
                    "MailProg=/bin/true",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/affinity",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SchedulerType=sched/backfill",
                    "SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1",
                    "GresTypes=gpu",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "SlurmdParameters=config_overrides",
                    "ReturnToService=2",
                    f"KillWait={KILL_WAIT_S}",
                    f"SlurmctldPort={free_port()}",
                    f"SlurmdPort={free_port()}",
                    f"StateSaveLocation={self.root / 'state'}",
                    f"SlurmdSpoolDir={self.root / 'spool'}",
                    f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.root / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
                    f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=1000 Gres=gpu:1 State=UNKNOWN",
                    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        # One pretend GPU (no device file): enough for `--gres=gpu:1` jobs to be scheduled.
        (self.root / "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\n")
        conf = str(self.conf)
        with open(self.root / "log" / "daemons.out", "wb") as out:  # the daemons keep their own copies
            self.ctld = subprocess.Popen(
                [_program("slurmctld"), "-D", "-f", conf], stdout=out, stderr=out, env=self.env
            )
            self.slurmd = subprocess.Popen(
                [_program("slurmd"), "-D", "-f", conf, "-N", "localhost"], stdout=out, stderr=out, env=self.env
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.ctld.poll() is not None or self.slurmd.poll() is not None:
                break
            state = self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.1)
        logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted((self.root / "log").glob("*")))
        self.stop()
        raise RuntimeError(f"the local SLURM cluster did not become idle in {READY_TIMEOUT_S} s:\n{logs}")

    def run(
        self, *argv: str, check: bool = True, timeout_s: float = 30.0, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """A SLURM client command against this cluster."""
        return subprocess.run(
            list(argv), capture_output=True, text=True, check=check, timeout=timeout_s, env={**self.env, **env}
        )

    def sbatch(self, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        """Submit; returns the job id (`--parsable`)."""
        done = subprocess.run(
            ["sbatch", "--parsable", *argv],
            capture_output=True,
            text=True,
            timeout=30,
            env={**(env or os.environ), "SLURM_CONF": str(self.conf)},
            cwd=cwd,
        )
        if done.returncode != 0:
            raise AssertionError(f"sbatch {' '.join(argv)} failed: {done.stderr}")
        return done.stdout.strip().split(";")[0]

    def queue(self, job: str | None = None) -> list[str]:
        """`squeue` lines `JOBID STATE` (array tasks as `ID_TASK`), of one job or all."""
        argv = ["squeue", "-h", "-o", "%i %T"] + (["-j", job] if job else [])
        done = self.run(*argv, check=False)
        return [line for line in done.stdout.splitlines() if line.strip()]

    def show_job(self, job: str) -> str:
        return self.run("scontrol", "show", "job", job, check=False).stdout

    def job_states(self, job: str) -> list[str]:
        """JobState of every task of a job (an array gives one per task), finished ones included."""
        return re.findall(r"JobState=(\S+)", self.show_job(job))

    def wait_states(self, job: str, wanted: Iterable[str], count: int, timeout_s: float) -> list[str]:
        """Poll until `count` tasks of `job` are in one of `wanted` (squeue, not `sbatch --wait`: no back-off)."""
        wanted = set(wanted)
        deadline = time.monotonic() + timeout_s
        states: list[str] = []
        while time.monotonic() < deadline:
            states = self.job_states(job)
            if sum(state in wanted for state in states) >= count:
                return states
            time.sleep(0.1)
        raise AssertionError(f"job {job}: states {states} after {timeout_s} s, wanted {count} in {sorted(wanted)}")

    def wait_empty(self, timeout_s: float = DRAIN_QUEUE_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.queue():
                return True
            time.sleep(0.1)
        return False

    def stepd_pids(self) -> list[int]:
        """slurmstepd processes of this cluster (they keep its log file open)."""
        mine = str(self.root)
        found = []
        for pid in pids():
            if cmdline(pid).startswith("slurmstepd"):
                fds = Path(f"/proc/{pid}/fd")
                try:
                    if any(os.readlink(fd).startswith(mine) for fd in fds.iterdir()):
                        found.append(pid)
                except OSError:
                    continue
        return found

    def stop(self) -> list[str]:
        """Cancel every job, wait for an empty queue, stop both daemons; returns what had to be killed."""
        killed: list[str] = []
        if self.ctld is not None and self.ctld.poll() is None:
            self.run("scancel", "--partition=debug", check=False)
            if not self.wait_empty():
                killed.append(f"jobs still queued after {DRAIN_QUEUE_TIMEOUT_S} s: {self.queue()}")
        for pid in self.stepd_pids():  # only after a failure: a step that outlived its job
            for victim in [*descendants(pid), pid]:
                killed.append(f"{victim} {cmdline(victim)[:80]}")
                _kill(victim)
        for daemon in (self.slurmd, self.ctld):
            if daemon is not None and daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        for daemon in (self.slurmd, self.ctld):
            if daemon is None:
                continue
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                killed.append(f"{daemon.args[0]} ignored SIGTERM")
                daemon.kill()
                daemon.wait(5)
        return killed


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def job_processes(cluster: SlurmCluster, job_id: str) -> dict[int, str]:
    """pid -> command line of every process a job's steps run (the steps' slurmstepd descendants)."""
    found: dict[int, str] = {}
    for stepd in cluster.stepd_pids():
        if re.search(rf"\[{re.escape(job_id)}\.", cmdline(stepd)):
            found.update({pid: cmdline(pid) for pid in descendants(stepd)})
    return found

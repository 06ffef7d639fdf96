"""Build a candidate: policy checks, then compile it into a shared object in the sandbox.

One sandbox launch runs the compiler (keeping the preprocessed text), `readelf` on the
object, and the link, so the untrusted source never meets an unsandboxed tool. The checks of
bencher.policy then decide whether the built library may run. The candidate is never linked into
the monitor: the monitor (harness/monitor.c and the problem's harness, trusted, compiled on the host
once per problem) is a program of its own, and only its forked child loads the candidate's library,
so no candidate code (constructor, ifunc resolver) runs in the monitor's process (docs/bencher.md).
Builds are cached on disk by the exact bytes of the source, compiler identity, flags, harness and
checks, so the duplicates common in a GRPO group compile once; compile errors and rejections are
cached too (they are deterministic), limits are not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bencher import policy
from bencher import source as source_text
from bencher.config import MIB, BencherConfig
from bencher.sandbox import Limits, Mount, Sandbox, SandboxError
from bus.problems import Problem
from bus.schema import Verdict

log = logging.getLogger(__name__)
MONITOR_DIR = Path(__file__).parent / "harness"
"""monitor.c and monitor.h: the generic half of every problem's trusted benchmark program."""
HARNESS_OPTIMIZATION = "-O2"
"""The trusted monitor and harness are compiled once per problem with this and bencher.march, outside the
sandbox."""
MONITOR_BINARY = "bench"
"""The monitor program, in a build's directory next to the candidate's library."""
CANDIDATE_LIBRARY = "candidate.so"
"""The candidate's shared object, in a build's directory next to the monitor (which loads it in its child)."""
CANDIDATE_FLAGS = ("-fPIC",)
LINK_FLAGS = ("-shared", "-Wl,-z,defs")
"""A shared object, with every symbol resolved at link time (an unknown function is a link error, as it was
when the candidate was linked into an executable, not a load failure at run time)."""
_COMPILE_LOG_BYTES = 2000
_EXIT_COMPILE, _EXIT_INSPECT, _EXIT_LINK = 10, 11, 12
_CACHEABLE = (Verdict.OK, Verdict.COMPILE_ERROR, Verdict.REJECTED)


@dataclass(frozen=True)
class Build:
    verdict: Verdict
    """OK: `binary` (the monitor, with the candidate's library beside it) may run. Otherwise why not
    (compile_error, rejected, timeout, resource_limit, infra_error)."""
    detail: str
    binary: Path | None
    compile_s: float
    """Seconds spent in the compiler sandbox (0 when cached)."""
    cached: bool = False


@cache
def compiler_identity(compiler: str) -> str:
    """First line of `compiler --version`: part of every cache key, so an upgraded compiler rebuilds."""
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise SandboxError(
            f"compiler {compiler!r} does not run ({error}); install it or set bencher.compiler"
        ) from None
    return out.splitlines()[0] if out else compiler


@cache
def target_identity(compiler: str, march: str) -> str:
    """What `-march=<march>` means to this compiler on this node: the options the driver passes to the compiler
    proper (for `native`, the CPU's own name and every ISA flag it detected). Part of every cache key, so nodes
    of different kinds sharing a cache_dir never run each other's binaries (an AVX-512 build would crash on an
    AVX2 node, and that crash would be charged to the candidate)."""
    # -S: the compiler proper writes straight to -o; with -c it would name a random temporary .s file, and every
    # process would get another identity (no cache entry would survive a restart).
    command = [compiler, f"-march={march}", "-###", "-x", "c", "-S", "/dev/null", "-o", "/dev/null"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        raise SandboxError(
            f"compiler {compiler!r} does not run ({error}); install it or set bencher.compiler"
        ) from None
    if done.returncode != 0:
        raise SandboxError(f"{compiler} refuses -march={march}: {done.stderr.strip()[-300:]}; fix bencher.march")
    proper = [line for line in done.stderr.splitlines() if "-march=" in line and not line.startswith("COLLECT")]
    return hashlib.sha256((proper[0] if proper else march).encode()).hexdigest()[:16]


class Builder:
    def __init__(self, config: BencherConfig, sandbox: Sandbox) -> None:
        self.config = config
        self.sandbox = sandbox
        self.cache_dir = config.cache_path / "builds"
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def compiler_for(self, problem: Problem) -> str:
        return self.config.compiler or problem.compiler

    def build_key(self, problem: Problem, source: str, extra_flags: tuple[str, ...] = ()) -> str:
        """What is really built: the exact bytes gcc reads (never a normal form of them: two programs
        that a normaliser merges would share one verdict), the compiler's identity, every flag, the
        harness, and the checks themselves (a build that older checks let through is judged again)."""
        compiler = self.compiler_for(problem)
        parts = [
            hashlib.sha256(source_text.source_bytes(source)).hexdigest(),
            compiler_identity(compiler),
            shlex.join(problem.flags + CANDIDATE_FLAGS + LINK_FLAGS + extra_flags),
            target_identity(compiler, self.config.march),
            self._harness_digest(problem),
            _CHECKS_DIGEST,
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def build(self, problem: Problem, source: str, trusted_libraries: tuple[str, ...] = ()) -> Build:
        """Check, compile and link `source`. `trusted_libraries` (e.g. `-lopenblas`) is only for our own
        calibration kernels: it links them and skips every policy check, so it must never be used for a
        candidate (nothing on the bus can ask for it)."""
        if not trusted_libraries:
            reason = policy.check_source(source)
            if reason:
                return Build(Verdict.REJECTED, reason, None, 0.0)
        key = self.build_key(problem, source, trusted_libraries)
        entry_dir = self.cache_dir / key
        cached = self._cached(entry_dir)
        if cached:
            return cached
        started = time.monotonic()
        try:
            build = self._compile(problem, source, entry_dir, trusted_libraries)
        except SandboxError as error:
            log.error("event=build_infra_error problem=%s error=%s", problem.id, error)
            build = Build(Verdict.INFRA_ERROR, f"bencher fault while compiling: {error}", None, 0.0)
        build = Build(build.verdict, build.detail, build.binary, time.monotonic() - started)
        if build.verdict in _CACHEABLE:
            entry_dir.mkdir(parents=True, exist_ok=True)
            outcome = entry_dir / f"outcome.{_unique()}.tmp"
            outcome.write_text(json.dumps({"verdict": build.verdict, "detail": build.detail}))
            outcome.replace(entry_dir / "outcome.json")
        return build

    # ------------------------------------------------------------ internals

    def _cached(self, entry_dir: Path) -> Build | None:
        try:
            outcome = json.loads((entry_dir / "outcome.json").read_text())
        except (OSError, ValueError):
            return None
        verdict = Verdict(outcome["verdict"])
        binary = entry_dir / MONITOR_BINARY if verdict is Verdict.OK else None
        if binary is not None and not (binary.is_file() and (entry_dir / CANDIDATE_LIBRARY).is_file()):
            return None
        return Build(verdict, outcome["detail"], binary, 0.0, cached=True)

    def _harness_digest(self, problem: Problem) -> str:
        digest = hashlib.sha256()
        for path in (MONITOR_DIR / "monitor.h", MONITOR_DIR / "monitor.c", problem.harness):
            digest.update(path.read_bytes())
        digest.update(shlex.join(self.harness_flags).encode())
        digest.update(target_identity(self.compiler_for(problem), self.config.march).encode())
        return digest.hexdigest()[:16]

    @property
    def harness_flags(self) -> tuple[str, ...]:
        return (HARNESS_OPTIMIZATION, f"-march={self.config.march}")

    def _monitor_binary(self, problem: Problem) -> Path:
        """monitor.c + the problem's harness as one program (trusted: compiled on the host, once per problem)."""
        compiler = self.compiler_for(problem)
        path = self.cache_dir / f"monitor-{problem.id}-{compiler}-{self._harness_digest(problem)}"
        if path.is_file():
            return path
        partial = path.with_suffix(f".{_unique()}.tmp")  # benchers sharing a cache dir may race here
        sources = (str(MONITOR_DIR / "monitor.c"), str(problem.harness))
        command = [
            compiler,
            *self.harness_flags,
            "-Wall",
            f"-I{MONITOR_DIR}",
            *sources,
            "-lm",
            "-ldl",
            "-o",
            str(partial),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise SandboxError(f"the trusted monitor does not compile: {result.stderr[-500:]}")
        partial.replace(path)
        return path

    def _compile(self, problem: Problem, source: str, entry_dir: Path, libraries: tuple[str, ...]) -> Build:
        compiler = self.compiler_for(problem)
        trusted = bool(libraries)
        flags = shlex.join(problem.flags + CANDIDATE_FLAGS)
        script = "\n".join(
            [
                "cd /tmp/work/out",
                f"{compiler} {flags} -save-temps=obj -c cand.c -o cand.o 2> compile.log || exit {_EXIT_COMPILE}",
                "readelf -SW cand.o > sections.txt && readelf -sW cand.o > symbols.txt"
                " && readelf -rW cand.o > relocations.txt && objdump -d -w cand.o > disassembly.txt"
                f" || exit {_EXIT_INSPECT}",
                f"{compiler} {flags} {shlex.join(LINK_FLAGS)} cand.o -lm {shlex.join(libraries)}"
                f" -o {CANDIDATE_LIBRARY} 2> link.log || exit {_EXIT_LINK}",
            ]
        )
        limits = Limits(
            wall_s=self.config.compile_timeout_s,
            cpu_s=max(1, int(self.config.compile_timeout_s)),
            address_space_bytes=self.config.compile_memory_bytes,
            processes=64,
            file_size_bytes=256 * MIB,
            open_files=256,
            tmpfs_bytes=512 * MIB,
        )
        with self.sandbox.host_dir("hpcrl-build-") as out:
            (out / "cand.c").write_bytes(source_text.source_bytes(source))
            monitor = self._monitor_binary(problem)
            run = self.sandbox.run(["/bin/sh", "-c", script], limits=limits, mounts=[Mount(out, "/tmp/work/out", True)])
            if run.timed_out:
                return Build(Verdict.TIMEOUT, f"compiling took longer than {limits.wall_s:g} s", None, 0.0)
            if run.exit_code == _EXIT_COMPILE:
                log_text = _read_log(out / "compile.log")
                if "virtual memory exhausted" in log_text or "out of memory" in log_text:
                    return Build(Verdict.RESOURCE_LIMIT, f"the compiler ran out of memory: {log_text}", None, 0.0)
                return Build(Verdict.COMPILE_ERROR, log_text, None, 0.0)
            if run.exit_code is None:
                return Build(Verdict.RESOURCE_LIMIT, f"the compiler was stopped: {run.describe()}", None, 0.0)
            if run.exit_code not in (0, _EXIT_LINK):
                raise SandboxError(f"inspecting the object failed ({run.describe()}): {run.stderr[-300:]!r}")
            if not trusted:
                symbols = policy.parse_symbols(_read(out / "symbols.txt"))
                reason = (
                    _uninspectable(out)
                    or policy.check_preprocessed(_read(out / "cand.i"))
                    or policy.check_sections(_read(out / "sections.txt"), symbols)
                    or policy.check_symbols(symbols, problem.entry)
                    or policy.check_relocations(_read(out / "relocations.txt"))
                    or policy.check_instructions(_read(out / "disassembly.txt"))
                )
                if reason:
                    return Build(Verdict.REJECTED, reason, None, 0.0)
            if run.exit_code == _EXIT_LINK:
                return Build(Verdict.COMPILE_ERROR, "link failed: " + _read_log(out / "link.log"), None, 0.0)
            library = out / CANDIDATE_LIBRARY
            if library.is_symlink() or not library.is_file():
                raise SandboxError("the linker's output is not a plain file")
            entry_dir.mkdir(parents=True, exist_ok=True)
            # Benchers sharing a cache dir (SLURM tasks on one node) build the same key at the same time:
            # each writes its own files and renames them into place, so none reads or runs a half-written one.
            # The library first: an entry counts as built once its monitor is in place.
            for source_path, name in ((library, CANDIDATE_LIBRARY), (monitor, MONITOR_BINARY)):
                partial = entry_dir / f"{name}.{_unique()}.tmp"
                shutil.copyfile(source_path, partial)
                partial.chmod(0o755)
                partial.replace(entry_dir / name)
        return Build(Verdict.OK, "", entry_dir / MONITOR_BINARY, 0.0)


_MAX_OUTPUT_READ_BYTES = 64 << 20
_INSPECTED = ("cand.i", "sections.txt", "symbols.txt", "relocations.txt", "disassembly.txt")
_CHECKS_DIGEST = hashlib.sha256(
    b"".join(Path(module).read_bytes() for module in (policy.__file__, source_text.__file__, __file__))
).hexdigest()[:16]
"""The code that judges a build, part of every build key: cached verdicts of older checks do not count."""


def _uninspectable(out: Path) -> str | None:
    """A check must read all of what it judges: an object whose listing exceeds what we read is refused
    (a system call at the end of 64 MiB of disassembly would otherwise go unseen)."""
    for name in _INSPECTED:
        try:
            size = os.lstat(out / name).st_size
        except FileNotFoundError:
            continue
        if size >= _MAX_OUTPUT_READ_BYTES:
            return f"the object is too large to inspect ({name} is over {_MAX_OUTPUT_READ_BYTES >> 20} MiB)"
    return None


def _unique() -> str:
    """A name part no other process or thread writing into the same cache dir uses."""
    return f"{os.getpid()}-{threading.get_ident()}"


def _read(path: Path) -> str:
    """A file the sandboxed tools wrote: never through a symlink (the directory is the sandbox's, so
    a link to a host file must not be followed by us as root), and at most 64 MiB."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return ""
    except OSError as error:
        raise SandboxError(f"sandbox output {path.name} is not a plain file: {error}") from None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(_MAX_OUTPUT_READ_BYTES).decode(errors="replace")


def _read_log(path: Path) -> str:
    """The compiler's messages, with the sandbox paths removed, cut to a readable length."""
    text = _read(path).replace("/tmp/work/out/", "")
    return text if len(text) <= _COMPILE_LOG_BYTES else text[:_COMPILE_LOG_BYTES] + "\n[... truncated]"

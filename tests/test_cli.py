"""The `hpcrl` command: every subcommand is listed and answers --help; `hpcrl tail` prints journaled
events as JSON lines; the bus subcommands never import the ML stack."""

from __future__ import annotations

import json
import subprocess

import pytest

from bus.client import BusClient
from bus.schema import StageChange, TrainerStep
from ops.cli import SUBCOMMANDS
from tests.conftest import HPCRL, REPO, BusSite, Processes, log_of, wait_for

RUN_TIMEOUT_S = 60
IDLE_EXIT_DEADLINE_S = 15
"""Far beyond a 1 s idle exit plus start-up, far below forever."""


def hpcrl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HPCRL, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


# ---------------------------------------------------------------- the command itself


def test_hpcrl_help_lists_every_subcommand() -> None:
    done = hpcrl("--help")
    assert done.returncode == 0
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert listed == set(SUBCOMMANDS)
    for _, _, help_text in SUBCOMMANDS.values():
        assert help_text in done.stdout


def test_hpcrl_without_arguments_prints_the_usage() -> None:
    done = hpcrl()
    assert done.returncode == 0 and "usage: hpcrl SUBCOMMAND" in done.stdout


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_accepts_help_and_exits_0(name: str) -> None:
    done = hpcrl(name, "--help")
    assert done.returncode == 0, done.stderr
    assert f"hpcrl {name}" in done.stdout, "the usage line names the subcommand"
    assert "Traceback" not in done.stderr


def test_an_unknown_subcommand_exits_2_with_the_usage_on_stderr() -> None:
    done = hpcrl("frobnicate")
    assert done.returncode == 2
    assert "unknown subcommand 'frobnicate'" in done.stderr
    assert "usage: hpcrl SUBCOMMAND" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "argv", [["bus", "--help"], ["tail", "--help"], ["submit", "--help"], ["keys", "--help"], ["test-worker", "--help"]]
)
def test_the_bus_subcommands_never_import_the_ml_stack(argv: list[str]) -> None:
    """A bencher node runs these without torch installed: importing it would be slow or fail."""
    program = (
        "import sys\n"
        "from ops.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft', 'vllm'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([HPCRL[0], "-c", program], cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr, done.stderr.splitlines()[-1]


# ---------------------------------------------------------------- hpcrl tail


def publish(site: BusSite, *events: tuple[type, dict[str, object]]) -> None:
    """Publish events and wait until the broker has journaled every one of them."""
    with BusClient(site.bus_config, site.client_config, name="publisher", results=False) as client:
        for event_type, fields in events:
            client.publish(event_type, **fields)
        assert client.flush(timeout_s=15), "the broker did not acknowledge the events"


def stage_change(to_stage: int) -> tuple[type, dict[str, object]]:
    return StageChange, {"problem": "dgemm", "from_stage": to_stage - 1, "to_stage": to_stage, "reason": "test"}


def trainer_step(step: int) -> tuple[type, dict[str, object]]:
    return TrainerStep, {"run": "cli-test", "step": step}


def test_tail_since_0_with_a_count_prints_exactly_that_many_journaled_events(
    site: BusSite, processes: Processes
) -> None:
    processes.broker()
    publish(site, *[stage_change(stage) for stage in range(1, 6)])
    done = hpcrl("tail", "--since", "0", "--count", "3", env=site.env)
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    assert [(e["topic"], e["kind"], e["bus_seq"]) for e in events] == [
        ("stage.dgemm", "stage_change", 1),
        ("stage.dgemm", "stage_change", 2),
        ("stage.dgemm", "stage_change", 3),
    ]
    assert [e["to_stage"] for e in events] == [1, 2, 3]
    assert [e["topic_seq"] for e in events] == [1, 2, 3]


def test_tail_prints_events_and_never_the_heartbeats_published_between_them(
    site: BusSite, processes: Processes
) -> None:
    """Heartbeats are liveness, not events: without --topic, tail follows every journaled topic
    but stays silent while only heartbeats flow (so --count and --idle-exit-s mean events)."""
    processes.broker()
    publish(site, stage_change(1))
    tail = processes.start("tail", "--since", "0")
    wait_for(lambda: '"to_stage": 1' in log_of(site, "tail"), 15, "tail to replay the first event")
    with BusClient(site.bus_config, site.client_config, name="heartbeat-watch", results=False) as client:
        # Three distinct broker heartbeats reach this client, at least two of them sent after tail
        # printed the first event: the broker published those to tail too.
        seen: list[str] = []

        def two_broker_heartbeats() -> bool:
            client.pump(0.05)
            heartbeat = client.conn.broker_heartbeat
            if heartbeat is not None and heartbeat.id not in seen:
                seen.append(heartbeat.id)
            return len(seen) >= 3

        wait_for(two_broker_heartbeats, 15, "fresh broker heartbeats")
        client.publish(StageChange, **stage_change(2)[1])
        assert client.flush(timeout_s=15)
    wait_for(lambda: '"to_stage": 2' in log_of(site, "tail"), 15, "tail to print the second event")
    assert processes.stop(tail) == 0
    printed = [json.loads(line) for line in log_of(site, "tail").splitlines() if line.startswith("{")]
    assert [(e["topic"], e["bus_seq"]) for e in printed] == [("stage.dgemm", 1), ("stage.dgemm", 2)]


def test_tail_idle_exit_waits_for_events_not_heartbeats(site: BusSite, processes: Processes) -> None:
    """Without --topic, tail hides heartbeats; they must not keep --idle-exit-s from firing either."""
    processes.broker()
    publish(site, stage_change(1), trainer_step(1))
    try:
        done = subprocess.run(
            [*HPCRL, "tail", "--since", "0", "--idle-exit-s", "1"],
            cwd=REPO,
            env=site.env,
            capture_output=True,
            text=True,
            timeout=IDLE_EXIT_DEADLINE_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"tail --idle-exit-s 1 still ran after {IDLE_EXIT_DEADLINE_S} s: heartbeats count as activity")
    assert done.returncode == 0, done.stderr
    assert [(e["topic"], e["bus_seq"]) for e in json_lines(done.stdout)] == [("stage.dgemm", 1), ("trainer.step", 2)]


def test_tail_with_a_topic_prefix_prints_only_matching_events(site: BusSite, processes: Processes) -> None:
    processes.broker()
    publish(site, stage_change(1), trainer_step(1), stage_change(2), trainer_step(2), stage_change(3))
    done = hpcrl("tail", "--since", "0", "--topic", "stage.", "--idle-exit-s", "1", env=site.env)
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    assert [(e["topic"], e["kind"], e["bus_seq"]) for e in events] == [
        ("stage.dgemm", "stage_change", 1),
        ("stage.dgemm", "stage_change", 3),
        ("stage.dgemm", "stage_change", 5),
    ]


def test_tail_with_two_topic_prefixes_prints_both_in_journal_order(site: BusSite, processes: Processes) -> None:
    processes.broker()
    publish(site, stage_change(1), trainer_step(1), stage_change(2))
    done = hpcrl("tail", "--since", "0", "--topic", "stage.", "--topic", "trainer.", "--count", "3", env=site.env)
    assert done.returncode == 0, done.stderr
    assert [(e["topic"], e["bus_seq"]) for e in json_lines(done.stdout)] == [
        ("stage.dgemm", 1),
        ("trainer.step", 2),
        ("stage.dgemm", 3),
    ]

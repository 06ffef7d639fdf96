"""examples/submit_candidate.py speaks the bus protocol from docs/protocol.md alone, and plain msgpack
and bus.schema read each other's frames: the wire format does not depend on our codec."""

from __future__ import annotations

import ast
import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import msgspec
import pytest

from bus.schema import (
    KINDS,
    Candidate,
    FetchReply,
    FrameError,
    Heartbeat,
    PeerState,
    Result,
    Verdict,
    decode,
    encode,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "submit_candidate.py"
C_SOURCE = "void dgemm(int n, const double *a, const double *b, double *c) { /* not run by the test worker */ }\n"
EXAMPLE_TIMEOUT_S = 30.0


def run_example(
    site: Any, tmp_path: Path, *extra: str, event_endpoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "mm.c"
    source.write_text(C_SOURCE)
    return subprocess.run(
        [
            sys.executable, str(EXAMPLE),
            "--request-endpoint", site.bus_config.request_endpoint,
            "--event-endpoint", event_endpoint or site.bus_config.event_endpoint,
            "--heartbeat-interval-s", str(site.bus_config.heartbeat_interval_s),
            "--problem", "dgemm", "--size", "256",
            *extra,
            str(source),
        ],
        capture_output=True, text=True, cwd=REPO, env=site.env, timeout=EXAMPLE_TIMEOUT_S + 15,
    )  # fmt: skip


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def printed_result(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert completed.returncode == 0, (
        f"exit {completed.returncode}\nstdout: {completed.stdout}\nstderr: {completed.stderr}"
    )
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {completed.stdout!r}"
    result: dict[str, Any] = json.loads(lines[0])
    return result


# ---------------------------------------------------------------- the example against real processes


def test_example_client_submits_a_candidate_and_prints_its_result(processes: Any, site: Any, tmp_path: Path) -> None:
    processes.broker()
    processes.worker("w1")
    completed = run_example(site, tmp_path, "--candidate-id", "example-1", "--timeout-s", str(EXAMPLE_TIMEOUT_S))
    result = printed_result(completed)
    assert result["kind"] == "result"
    assert result["candidate_id"] == "example-1"
    assert result["verdict"] == "infra_error"  # the test worker runs nothing and says so
    assert result["bus_seq"] >= 1
    assert result["topic_seq"] >= 1
    assert result["bencher_id"] == "w1"
    assert result["source"] == C_SOURCE
    assert isinstance(decode(msgpack.packb(result)), Result), "what it prints is a valid result message"


def test_example_client_resubmitting_a_finished_candidate_fetches_its_journaled_result(
    processes: Any, site: Any, tmp_path: Path
) -> None:
    processes.broker()
    processes.worker("w1")
    first = printed_result(
        run_example(site, tmp_path, "--candidate-id", "example-2", "--timeout-s", str(EXAMPLE_TIMEOUT_S))
    )
    again = run_example(site, tmp_path, "--candidate-id", "example-2", "--timeout-s", str(EXAMPLE_TIMEOUT_S))
    assert printed_result(again) == first, "a `done` candidate must come back as the same journaled result"
    assert "ack done" in again.stderr
    assert "recovered by a lookup fetch" in again.stderr


def test_example_client_recovers_a_result_it_never_saw_published(processes: Any, site: Any, tmp_path: Path) -> None:
    """A SUB that receives nothing (the worst slow joiner): broker heartbeats show the topic ahead of the
    client, which then fetches the result from the journal."""
    processes.broker()
    processes.worker("w1")
    deaf = f"tcp://127.0.0.1:{unused_port()}"  # nobody publishes here
    completed = run_example(
        site, tmp_path, "--candidate-id", "example-3", "--timeout-s", str(EXAMPLE_TIMEOUT_S), event_endpoint=deaf
    )
    result = printed_result(completed)
    assert result["candidate_id"] == "example-3"
    assert "recovered by a sync fetch" in completed.stderr


def test_example_client_exits_1_with_a_clear_message_when_no_broker_answers(site: Any, tmp_path: Path) -> None:
    completed = run_example(site, tmp_path, "--timeout-s", "1")
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "timed out" in completed.stderr


def test_example_client_imports_nothing_but_pyzmq_msgpack_and_the_standard_library() -> None:
    tree = ast.parse(EXAMPLE.read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    foreign = sorted(imported - set(sys.stdlib_module_names) - {"zmq", "msgpack"})
    assert not foreign, f"the example must stand alone, but imports {foreign}"


# ---------------------------------------------------------------- interoperability of the wire format

ENVELOPE = {"v": 1, "sent_at": 1700000000.25, "sender": "plain-msgpack", "seq": 7}
MINIMAL_MESSAGES: dict[str, dict[str, Any]] = {
    # Only required fields, written by hand, `kind` deliberately not first.
    "candidate": {
        "candidate_id": "c1",
        "run": "r",
        "problem": "dgemm",
        "size": 256,
        "source": "int x;",
        "kind": "candidate",
    },
    "result": {
        "candidate_id": "c1",
        "run": "r",
        "problem": "dgemm",
        "size": 256,
        "source": "int x;",
        "verdict": "ok",
        "kind": "result",
    },
    "ready": {"kind": "ready"},
    "release": {"candidate_ids": ["c1", "c2"], "kind": "release"},
    "stage_change": {"problem": "dgemm", "from_stage": 0, "to_stage": 1, "kind": "stage_change"},
    "archived": {
        "candidate_id": "c1",
        "run": "r",
        "problem": "dgemm",
        "size": 256,
        "verdict": "ok",
        "kind": "archived",
    },
    "trainer_step": {"run": "r", "step": 3, "kind": "trainer_step"},
    "heartbeat": {"role": "bencher", "incarnation": "abc", "kind": "heartbeat"},
    "ack": {"entries": [{"ref": "m1", "status": "done", "bus_seq": 4}], "kind": "ack"},
    "fetch": {"kind": "fetch"},
    "fetch_reply": {
        "ref": "m1",
        "events": [],
        "upto_bus_seq": 0,
        "head_bus_seq": 0,
        "complete": True,
        "kind": "fetch_reply",
    },
}


def covers(decoded: Any, written: Any) -> bool:
    """True if everything written is in what was decoded (which adds the defaults of absent fields)."""
    if isinstance(written, dict):
        return isinstance(decoded, dict) and all(k in decoded and covers(decoded[k], v) for k, v in written.items())
    if isinstance(written, list):
        return isinstance(decoded, list) and len(decoded) == len(written) and all(map(covers, decoded, written))
    return bool(decoded == written)


def plain(kind: str) -> dict[str, Any]:
    return {**ENVELOPE, "id": f"plain-{kind}", **MINIMAL_MESSAGES[kind]}


def test_every_kind_has_a_plain_msgpack_sample() -> None:
    assert set(MINIMAL_MESSAGES) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bus_schema_decodes_a_frame_built_with_plain_msgpack(kind: str) -> None:
    fields = plain(kind)
    message = decode(msgpack.packb(fields))
    assert message.__struct_config__.tag == kind
    assert covers(msgspec.to_builtins(message), fields), f"{kind} decoded to {message!r}"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_plain_msgpack_reads_every_field_that_bus_schema_encodes(kind: str) -> None:
    message = decode(msgpack.packb(plain(kind)))
    unpacked = msgpack.unpackb(encode(message), raw=False)
    assert unpacked["kind"] == kind
    assert set(unpacked) == {"kind", *type(message).__struct_fields__}, "the encoder writes every field, defaults too"
    assert unpacked == msgspec.to_builtins(message)


def test_plain_msgpack_sees_enums_as_strings_and_fetched_events_as_embedded_maps() -> None:
    heartbeat = decode(msgpack.packb(plain("heartbeat")))
    assert isinstance(heartbeat, Heartbeat) and heartbeat.state is PeerState.IDLE
    assert msgpack.unpackb(encode(heartbeat))["state"] == "idle"
    result = decode(msgpack.packb(plain("result")))
    assert isinstance(result, Result) and result.verdict is Verdict.OK
    stored = encode(msgspec.structs.replace(result, bus_seq=5, topic_seq=2))
    reply = FetchReply(
        id="b-1", sender="broker", seq=1, sent_at=1.0, ref="m1",
        events=[msgspec.Raw(stored)], upto_bus_seq=5, head_bus_seq=5, complete=True,
    )  # fmt: skip
    events = msgpack.unpackb(encode(reply), raw=False)["events"]
    assert events == [msgpack.unpackb(stored, raw=False)]
    assert msgpack.packb(events[0]) == stored, "an embedded event re-packs to the published bytes"


def test_bus_schema_ignores_extra_fields_and_drops_other_versions_from_plain_msgpack() -> None:
    newer = {**plain("ready"), "credit": 2, "some_future_field": [1, 2]}
    message = decode(msgpack.packb(newer))
    assert message.credit == 2  # type: ignore[union-attr]
    with pytest.raises(FrameError) as other_version:
        decode(msgpack.packb({**plain("ready"), "v": 2}))
    assert other_version.value.reason == "version"
    with pytest.raises(FrameError) as unknown_kind:
        decode(msgpack.packb({**plain("ready"), "kind": "teleport"}))
    assert unknown_kind.value.reason == "unknown_kind"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("submit_candidate_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_example_codec_and_bus_schema_agree() -> None:
    example = load_example()
    stamper = example.Stamper("example")
    candidate = stamper.make(
        "candidate", candidate_id="c9", run="adhoc", problem="dgemm", size=64, stage=0, policy_version=0,
        source=C_SOURCE, attempt=1,
    )  # fmt: skip
    decoded = decode(example.encode(candidate))
    assert isinstance(decoded, Candidate) and decoded.candidate_id == "c9" and decoded.sender == "example"
    heartbeat = example.decode(encode(decode(example.encode(stamper.make(
        "heartbeat", role="client", incarnation=stamper.incarnation, state="busy", in_flight=[], host="h", pid=1,
    )))))  # fmt: skip
    assert heartbeat["kind"] == "heartbeat" and heartbeat["state"] == "busy"
    assert example.decode(b"\xc1") is None, "junk is dropped, never fatal"
    assert example.decode(msgpack.packb({**plain("ready"), "v": 2})) is None, "other versions are dropped"

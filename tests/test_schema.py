"""The message schema: every message round-trips, and every kind of bad frame is classified."""

from __future__ import annotations

import msgspec
import pytest

from bus.schema import (
    KINDS,
    MESSAGE_TYPES,
    SCHEMA_VERSION,
    Ack,
    AckEntry,
    AckStatus,
    AddStatus,
    Archived,
    Candidate,
    FetchReply,
    FetchRequest,
    FrameError,
    Heartbeat,
    PeerState,
    Ready,
    Release,
    Result,
    Role,
    StageChange,
    Stamper,
    TrainerStep,
    Verdict,
    decode,
    encode,
    extra_field_names,
)

stamper = Stamper("test-sender")
CANDIDATE = stamper.make(
    Candidate,
    candidate_id="c-1",
    run="r",
    problem="dgemm",
    size=512,
    stage=2,
    policy_version=7,
    source="void dgemm(int n, const double *A, const double *B, double *C) {}",
    attempt=2,
)
SAMPLES = [
    CANDIDATE,
    stamper.make(
        Result,
        **Result.for_candidate(
            CANDIDATE,
            verdict=Verdict.OK,
            gflops_median=12.5,
            gflops_min=11.0,
            gflops_max=13.0,
            cv=0.02,
            repetitions=9,
            compile_s=0.07,
            run_s=0.4,
            detail="max error 1e-13",
            bencher_id="b-1",
            host="node7",
            slurm_job_id="4242",
            calibration_gflops=50.1,
            cached=True,
        ),
        bus_seq=10,
        topic_seq=3,
    ),
    stamper.make(Ready, credit=2),
    stamper.make(Release, candidate_ids=["c-1", "c-2"], reason="draining"),
    stamper.make(
        StageChange,
        problem="dgemm",
        from_stage=1,
        to_stage=2,
        reason="plateau",
        techniques=["loop_order", "tiling"],
        stats={"coverage": 0.5},
        bus_seq=4,
        topic_seq=1,
    ),
    stamper.make(
        Archived,
        candidate_id="c-1",
        run="r",
        problem="dgemm",
        size=512,
        stage=1,
        current_stage=2,
        verdict=Verdict.OK,
        objective=12.5,
        techniques=["loop_order", "tiling"],
        cell="dgemm/512/loop_order+tiling",
        status=AddStatus.NEW,
        outside_stage=True,
    ),
    stamper.make(
        TrainerStep,
        run="r",
        step=3,
        policy_version=3,
        reward_mean=1.5,
        reward_std=0.5,
        reward_max=3.0,
        gflops_mean=2.0,
        gflops_max=4.0,
        loss=0.1,
        kl=0.01,
        step_s=12.0,
        verdicts={"ok": 3, "compile_error": 1},
    ),
    stamper.make(
        Heartbeat,
        role=Role.BROKER,
        incarnation="abc",
        state=PeerState.BUSY,
        in_flight=["c-1"],
        host="h",
        pid=12,
        slurm_job_id="9",
        journal_head=40,
        topic_heads={"result.dgemm": 30},
        workers=3,
        queued=5,
    ),
    stamper.make(Ack, entries=[AckEntry(ref="m-1", status=AckStatus.DONE, bus_seq=9, reason="")]),
    stamper.make(FetchRequest, prefixes=["result.", "stage."], after_bus_seq=5, limit=10, latest_only=True),
]


def test_samples_cover_every_message_type() -> None:
    assert {type(m) for m in SAMPLES} | {FetchReply} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_unchanged(message: msgspec.Struct) -> None:
    assert decode(encode(message)) == message


def test_fetch_reply_carries_events_as_embedded_maps_that_decode() -> None:
    events = [encode(SAMPLES[1]), encode(SAMPLES[4])]
    reply = stamper.make(
        FetchReply,
        ref="q",
        events=[msgspec.Raw(e) for e in events],
        upto_bus_seq=10,
        head_bus_seq=12,
        complete=False,
        evicted_through=0,
        topic_heads={},
    )
    decoded = decode(encode(reply))
    assert isinstance(decoded, FetchReply)
    assert [decode(bytes(raw)) for raw in decoded.events] == [SAMPLES[1], SAMPLES[4]]
    # Embedded as maps, not as opaque bytes: another language sees plain msgpack.
    assert msgspec.msgpack.decode(encode(reply))["events"][0]["kind"] == "result"


def test_every_message_carries_the_envelope() -> None:
    raw = msgspec.msgpack.decode(encode(CANDIDATE))
    assert {"kind", "v", "id", "sender", "seq", "sent_at"} <= set(raw)
    assert raw["v"] == SCHEMA_VERSION and raw["kind"] == "candidate"


def test_stamper_numbers_messages_per_sender_and_ids_are_unique() -> None:
    local = Stamper("s")
    first, second = (local.make(Ready, credit=1) for _ in range(2))
    assert (first.seq, second.seq) == (1, 2)
    assert first.id != second.id and first.sender == "s"
    assert Stamper("s").make(Ready).id != first.id  # another process with the same name


def test_event_topics_follow_the_documented_rules() -> None:
    assert [m.topic for m in SAMPLES if hasattr(m, "topic") and not isinstance(m, Candidate)] == [
        "result.dgemm",
        "stage.dgemm",
        "archive.dgemm",
        "trainer.step",
        "heartbeat.broker",
    ]
    assert CANDIDATE.topic_of_result == "result.dgemm"


def test_extra_fields_from_a_newer_writer_are_ignored_and_reported() -> None:
    raw = msgspec.msgpack.decode(encode(CANDIDATE))
    raw["priority"] = 5
    frame = msgspec.msgpack.encode(raw)
    message = decode(frame)
    assert message == CANDIDATE
    assert extra_field_names(frame, message) == ["priority"]
    assert extra_field_names(encode(CANDIDATE), CANDIDATE) == []


def _frame(**overrides: object) -> bytes:
    raw = msgspec.msgpack.decode(encode(CANDIDATE))
    raw.update(overrides)
    return msgspec.msgpack.encode(raw)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\xc1\xff\x00", "not_msgpack"),
        (encode(CANDIDATE)[:-7], "not_msgpack"),
        (msgspec.msgpack.encode([1, 2, 3]), "invalid"),
        (msgspec.msgpack.encode(42), "invalid"),
        (_frame(kind="teleport"), "unknown_kind"),
        (_frame(v=SCHEMA_VERSION + 1), "version"),
        (_frame(size=-5), "invalid"),
        (_frame(size="big"), "invalid"),
        (_frame(problem="has.dot"), "invalid"),
        (_frame(source="x" * (256 * 1024 + 1)), "invalid"),
    ],
    ids=[
        "garbage",
        "truncated",
        "list",
        "int",
        "unknown-kind",
        "newer-version",
        "negative-size",
        "string-size",
        "dotted-problem",
        "oversized-source",
    ],
)
def test_bad_frames_raise_frame_error_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode(frame)
    assert caught.value.reason == reason


def test_missing_required_field_is_invalid() -> None:
    raw = msgspec.msgpack.decode(encode(CANDIDATE))
    del raw["source"]
    with pytest.raises(FrameError, match="invalid"):
        decode(msgspec.msgpack.encode(raw))


def test_kinds_are_unique_snake_case_names() -> None:
    assert len(KINDS) == len(MESSAGE_TYPES)
    assert all(kind.replace("_", "").isalpha() and kind.islower() for kind in KINDS)


def test_verdicts_are_the_closed_set_the_bencher_issue_names() -> None:
    assert {v.value for v in Verdict} == {
        "ok",
        "compile_error",
        "rejected",
        "wrong_answer",
        "timeout",
        "crash",
        "resource_limit",
        "infra_error",
    }


def test_remake_gives_a_new_envelope_and_keeps_every_other_field() -> None:
    local = Stamper("s")
    retry = local.remake(CANDIDATE, attempt=3)
    assert (retry.sender, retry.seq, retry.attempt) == ("s", 1, 3)
    assert retry.id != CANDIDATE.id
    assert (retry.candidate_id, retry.source, retry.size) == (CANDIDATE.candidate_id, CANDIDATE.source, CANDIDATE.size)

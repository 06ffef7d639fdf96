"""The cellular wall: hostile frames on every socket the broker binds never stop it. Each one is
dropped and counted by reason, and afterwards the broker still serves real clients and workers."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import msgspec
import pytest
import zmq

from bus.client import BusClient
from bus.schema import (
    Ack,
    AckEntry,
    AckStatus,
    Candidate,
    FetchReply,
    FetchRequest,
    FrameError,
    Heartbeat,
    Message,
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
)
from tests.conftest import BusSite, Processes, free_port, scrape, wait_for

FRAMES_PER_SOCKET = 10_000
RAW_TCP_CONNECTIONS_PER_PORT = 25
SEED = 20_240_611
"""Fixed, so a failure can be replayed frame for frame."""
MALFORMED = "hpcrl_bus_malformed_frames_total"
REASONS = ("not_msgpack", "invalid", "unknown_kind", "version", "framing")
SOURCE = "void dgemm(int n, const double *A, const double *B, double *C) { }"
SEND_TIMEOUT_S = 5.0


# ---------------------------------------------------------------- hostile frames


def real_messages(stamper: Stamper) -> list[Message]:
    """One message of every kind, to truncate, re-version and corrupt."""
    candidate = stamper.make(Candidate, candidate_id="c1", run="fuzz", problem="dgemm", size=64, source=SOURCE)
    return [
        candidate,
        stamper.make(Result, **Result.for_candidate(candidate, verdict=Verdict.OK, gflops_median=1.5)),
        stamper.make(Ready, credit=1),
        stamper.make(Release, candidate_ids=["c1"], reason="fuzz"),
        stamper.make(StageChange, problem="dgemm", from_stage=1, to_stage=2, techniques=["tiling"]),
        stamper.make(TrainerStep, run="fuzz", step=3, verdicts={"ok": 1}),
        stamper.make(Heartbeat, role=Role.BENCHER, incarnation="i1", in_flight=["c1"]),
        stamper.make(Ack, entries=[AckEntry(ref="m1", status=AckStatus.ACCEPTED)]),
        stamper.make(FetchRequest, prefixes=["stage."], after_bus_seq=1),
        stamper.make(FetchReply, ref="m1", events=[], upto_bus_seq=0, head_bus_seq=0, complete=True),
    ]


WRONG_TYPED_VALUES: list[object] = [None, -1, 1.5, "x" * 300, "", [], {"a": 1}, [1, [2]], True, b"\x00\xff"]
# fmt: off
WRONG_SHAPES: list[object] = [
    0, 7, -1, 2**64 - 1, 1.5, None, True, "candidate", b"\x01\x02", [], ["candidate"], [1, 2, 3],
    {}, {"v": 1}, {1: 2}, {"kind": None}, {"kind": 5}, {"kind": ["ready"]}, [[[[]]]],
]
# fmt: on


class FrameFactory:
    """Draws hostile messages (lists of frames). Single-frame messages are classified with the
    codec the broker uses, so the test knows which reason each one must be counted under."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.messages = real_messages(Stamper("fuzzer"))
        self.encoded = [encode(m) for m in self.messages]
        self.draws: list[Callable[[], list[bytes]]] = [
            self.random_bytes,
            self.truncated,
            self.wrong_shape,
            self.unknown_kind,
            self.wrong_type,
            self.other_version,
            self.multi_frame,
        ]

    def __iter__(self) -> Iterator[tuple[list[bytes], str]]:
        """Yields (frames, reason the broker must count it under), forever."""
        while True:
            frames = self.rng.choice(self.draws)()
            if len(frames) != 1:
                yield frames, "framing"
                continue
            try:
                decode(frames[0])
            except FrameError as error:
                yield frames, error.reason
            # A frame that decodes is a valid message, not a hostile one: never sent.

    def random_bytes(self) -> list[bytes]:
        return [self.rng.randbytes(self.rng.choice((0, 1, 2, 8, 64, 512)))]

    def truncated(self) -> list[bytes]:
        frame = self.rng.choice(self.encoded)
        return [frame[: self.rng.randrange(len(frame))]]

    def wrong_shape(self) -> list[bytes]:
        return [msgspec.msgpack.encode(self.rng.choice(WRONG_SHAPES))]

    def fields(self) -> dict[str, object]:
        return msgspec.to_builtins(self.rng.choice(self.messages))  # type: ignore[no-any-return]

    def unknown_kind(self) -> list[bytes]:
        fields = self.fields()
        fields["kind"] = self.rng.choice(["", "candidate2", "Candidate", "result.dgemm", "x" * 100])
        return [msgspec.msgpack.encode(fields)]

    def wrong_type(self) -> list[bytes]:
        fields = self.fields()
        key = self.rng.choice([k for k in fields if k not in ("kind", "v")])
        fields[key] = self.rng.choice(WRONG_TYPED_VALUES)
        return [msgspec.msgpack.encode(fields)]

    def other_version(self) -> list[bytes]:
        message = msgspec.structs.replace(self.rng.choice(self.messages), v=self.rng.choice([0, 2, 99, 2**40]))
        return [encode(message)]

    def multi_frame(self) -> list[bytes]:
        parts = self.rng.randint(2, 4)
        return [self.rng.choice([*self.encoded, b"", self.rng.randbytes(16)]) for _ in range(parts)]


def event_socket_junk(rng: random.Random) -> list[bytes]:
    """A message a subscriber might send that is not a subscription: no part starts with the
    0x00/0x01 subscribe/unsubscribe byte, so XPUB passes it up as one whole message."""
    parts = rng.choice((1, 1, 1, 2, 3))
    frames = []
    for _ in range(parts):
        frame = rng.randbytes(rng.choice((0, 1, 8, 100)))
        if frame and frame[0] in (0, 1):
            frame = bytes([rng.randint(2, 255)]) + frame[1:]
        frames.append(frame)
    return frames


# ---------------------------------------------------------------- helpers


def malformed_counts(metrics_port: int) -> Counter[str]:
    samples = scrape(metrics_port)
    return Counter({reason: int(samples[f'{MALFORMED}{{reason="{reason}"}}']) for reason in REASONS})


def counts_if_up(metrics_port: int) -> Counter[str] | None:
    try:
        return malformed_counts(metrics_port)
    except OSError:
        return None


def send_all(sock: zmq.Socket, messages: list[list[bytes]]) -> int:
    """Send without ever blocking the test for long; returns how many messages went out."""
    sent = 0
    deadline = time.monotonic() + SEND_TIMEOUT_S * 4
    for frames in messages:
        while True:
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
                sent += 1
                break
            except zmq.Again:
                if time.monotonic() > deadline or not sock.poll(int(SEND_TIMEOUT_S * 1000), zmq.POLLOUT):
                    return sent
    return sent


def raw_tcp_garbage(port: int, rng: random.Random) -> None:
    """Connect without ZMTP and write junk: sometimes bare bytes, sometimes a plausible ZMTP 3
    signature followed by junk, then half-close and wait (bounded) for the broker to hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        junk = rng.randbytes(rng.choice((1, 10, 64, 1000, 4000)))
        if rng.random() < 0.5:
            junk = b"\xff" + bytes(8) + b"\x7f" + junk
        try:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.2)
            while sock.recv(4096):
                pass
        except OSError:
            pass  # reset or timeout: either way the broker dealt with it


def complete_a_candidate(site: BusSite, processes: Processes, worker_name: str) -> Result | None:
    processes.worker(worker_name)
    with BusClient(site.bus_config, site.client_config, name="after-fuzz") as client:
        wait_for(lambda: client.pump(0.05) or client.workers_alive >= 1, 15, "the test worker to connect")
        candidate = client.submit(problem="dgemm", size=64, source=SOURCE)
        return client.wait_result(candidate.candidate_id, timeout_s=15)


def zmq_socket(kind: int, endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)  # no limit: nothing is dropped on our side of the pipe
    sock.setsockopt(zmq.SNDTIMEO, int(SEND_TIMEOUT_S * 1000))
    sock.connect(endpoint)
    return sock


def fetch(
    dealer: zmq.Socket, request: FetchRequest, timeout_s: float, broker: subprocess.Popen[bytes]
) -> FetchReply | None:
    """Send a FetchRequest on a raw DEALER and wait (bounded, and no longer than the broker lives)
    for its reply, skipping the broker's heartbeats."""
    dealer.send(encode(request), zmq.NOBLOCK)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and broker.poll() is None:
        if dealer.poll(100, zmq.POLLIN):
            message = decode(dealer.recv())
            if isinstance(message, FetchReply) and message.ref == request.id:
                return message
    return None


# ---------------------------------------------------------------- the wall


def test_ten_thousand_hostile_frames_on_every_socket_leave_the_broker_serving_and_counting(
    site: BusSite, processes: Processes
) -> None:
    metrics_port = free_port()
    broker = processes.broker("--metrics-port", str(metrics_port))
    before = wait_for(lambda: counts_if_up(metrics_port), 15, "the broker's metrics endpoint")
    rng = random.Random(SEED)
    expected: Counter[str] = Counter()

    # (a) The request socket (ROUTER). ZMTP delivers every message a connected DEALER sent
    # (our HWM is unlimited and nothing is dropped on a ROUTER's inbound pipe), and the broker
    # counts each under exactly one reason: so every message sent is in the lower bound.
    factory = iter(FrameFactory(rng))
    drawn = [next(factory) for _ in range(FRAMES_PER_SOCKET)]
    expected.update(reason for _, reason in drawn)
    # (b) The event socket (XPUB). XPUB itself consumes subscribe/unsubscribe messages and passes
    # only new subscriptions up, which the broker rightly ignores, so those few are mixed in but
    # left out of the bound; every other message reaches the broker and counts as `framing`.
    junk = [event_socket_junk(rng) for _ in range(FRAMES_PER_SOCKET)]
    subscriptions = [[b"\x01stage."], [b"\x01"], [b"\x00stage."], [b"\x01result.dgemm"]]
    expected["framing"] += len(junk)
    bound = sum(expected.values())
    with (
        zmq_socket(zmq.DEALER, site.bus_config.request_endpoint) as dealer,
        zmq_socket(zmq.XSUB, site.bus_config.event_endpoint) as xsub,
    ):
        assert send_all(dealer, [frames for frames, _ in drawn]) == FRAMES_PER_SOCKET
        assert send_all(xsub, subscriptions + junk) == len(subscriptions) + len(junk)
        # Both sockets stay open until then: closing (LINGER 0) drops what zmq has not yet written.
        wait_for(
            lambda: sum((malformed_counts(metrics_port) - before).values()) >= bound,
            30,
            f"the broker to count {bound} malformed frames",
        )
    # Nothing else talked to the broker yet: each frame was counted once, under the codec's reason.
    assert malformed_counts(metrics_port) - before == expected

    # (c) Raw TCP junk on both ports. libzmq rejects most of it in the handshake; junk that reads
    # as a ZMTP 1.0 peer may reach the broker as frames. Either way it only adds to the counts.
    for port in (site.request_port, site.event_port):
        for _ in range(RAW_TCP_CONNECTIONS_PER_PORT):
            raw_tcp_garbage(port, rng)

    assert broker.poll() is None, "the broker died on hostile input"
    result = complete_a_candidate(site, processes, "after-fuzz-worker")
    assert result is not None, "the broker no longer completes candidates after the fuzzing"
    assert result.verdict is Verdict.INFRA_ERROR and result.bencher_id == "after-fuzz-worker"

    counted = malformed_counts(metrics_port) - before
    for reason in REASONS:
        assert counted[reason] >= expected[reason], f"{reason}: counted {counted[reason]}, sent {expected[reason]}"
    assert sum(counted.values()) >= bound
    for reason in ("unknown_kind", "version", "invalid", "not_msgpack", "framing"):
        assert expected[reason] > 0 and counted[reason] > 0, f"no {reason} frame was counted"
    assert broker.poll() is None


# ---------------------------------------------------------------- single frames a careless reader dies on


def fetch_request_frame(extra_key: bytes = b"", extra_value: bytes = b"", **fields: object) -> bytes:
    """An encoded FetchRequest, optionally with one field this schema does not know (raw msgpack
    key and value): readers must ignore unknown fields, so the message itself stays usable."""
    body = encode(Stamper("fuzzer").make(FetchRequest, **{"limit": 0, **fields}))
    assert 0x80 <= body[0] <= 0x8E, "the FetchRequest must encode as a fixmap"
    if not extra_key:
        return body
    return bytes([body[0] + 1]) + body[1:] + extra_key + extra_value


def replaced(frame: bytes, old: bytes, new: bytes) -> bytes:
    assert frame.count(old) == 1, f"{old!r} must occur once in {frame!r}"
    return frame.replace(old, new)


HOSTILE_FRAMES = {
    # An unknown field whose value or name does not decode, though every known field does.
    "extra_field_bad_timestamp": fetch_request_frame(b"\xa5extra", b"\xd5\xff\x01\x02"),
    "extra_field_map_with_a_map_key": fetch_request_frame(b"\xa5extra", b"\x81\x81\x01\x02\x03"),
    "extra_field_invalid_utf8": fetch_request_frame(b"\xa5extra", b"\xa2\xff\xfe"),
    "extra_field_invalid_utf8_name": fetch_request_frame(b"\xa2\xff\xfe", b"\x01"),
    "extra_field_nested_5000_deep": fetch_request_frame(b"\xa5extra", b"\x91" * 5000 + b"\x01"),
    # Strings that are not UTF-8 in fields every reader looks at.
    "sender_invalid_utf8": replaced(fetch_request_frame(), b"\xa6fuzzer", b"\xa6fuzz\xff\xfe"),
    "kind_invalid_utf8": b"\x81\xa4kind\xa2\xff\xfe",
    "version_invalid_utf8": b"\x82\xa4kind\xa5ready\xa1v\xa2\xff\xfe",
    # Numbers past what the journal (SQLite, signed 64-bit) can hold.
    "fetch_after_2_63": fetch_request_frame(after_bus_seq=2**63, limit=10),
    "fetch_after_2_64_minus_1": fetch_request_frame(after_bus_seq=2**64 - 1, limit=10),
}


@dataclass
class RawPeer:
    broker: subprocess.Popen[bytes]
    dealer: zmq.Socket
    stamper: Stamper

    def answered(self, timeout_s: float = 5.0) -> bool:
        return fetch(self.dealer, self.stamper.make(FetchRequest, limit=0), timeout_s, self.broker) is not None


@pytest.fixture
def raw_peer(site: BusSite, processes: Processes) -> Iterator[RawPeer]:
    """A running broker and a raw DEALER to its request socket, checked to be answered."""
    peer = RawPeer(processes.broker(), zmq_socket(zmq.DEALER, site.bus_config.request_endpoint), Stamper("fuzzer"))
    try:
        assert peer.answered(timeout_s=15), "the broker never answered a fetch"
        yield peer
    finally:
        peer.dealer.close()


@pytest.mark.parametrize("frame", HOSTILE_FRAMES.values(), ids=HOSTILE_FRAMES.keys())
def test_one_hostile_frame_does_not_stop_the_broker_answering_the_next_request(raw_peer: RawPeer, frame: bytes) -> None:
    raw_peer.dealer.send(frame, zmq.NOBLOCK)
    assert raw_peer.answered(), "the broker stopped answering after one hostile frame"
    assert raw_peer.broker.poll() is None


def test_a_fetch_after_the_largest_bus_seq_is_answered_with_no_events(raw_peer: RawPeer) -> None:
    request = raw_peer.stamper.make(FetchRequest, after_bus_seq=2**63 - 1)
    reply = fetch(raw_peer.dealer, request, timeout_s=5, broker=raw_peer.broker)
    assert reply is not None and reply.events == []
    assert raw_peer.answered()


# ---------------------------------------------------------------- mutated real messages


def bit_flipped(rng: random.Random, frame: bytes) -> bytes:
    """A real message with 1-4 bytes replaced, inserted or deleted: well-formed enough to get deep
    into the decoder, which random bytes rarely do."""
    mutated = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(mutated))
        roll = rng.random()
        if roll < 0.6:
            mutated[at] = rng.randrange(256)
        elif roll < 0.8:
            mutated[at:at] = rng.randbytes(rng.randint(1, 4))
        elif len(mutated) > 1:
            del mutated[at]
    return bytes(mutated)


def is_valid_message(frame: bytes) -> bool:
    try:
        decode(frame)
    except FrameError:
        return False
    except Exception:  # our own codec cannot even classify it: hostile all the more, so send it
        return False
    return True


def test_ten_thousand_bit_flipped_real_messages_are_each_dropped_and_counted(
    site: BusSite, processes: Processes
) -> None:
    metrics_port = free_port()
    broker = processes.broker("--metrics-port", str(metrics_port))
    before = wait_for(lambda: counts_if_up(metrics_port), 15, "the broker's metrics endpoint")
    rng = random.Random(SEED + 1)
    originals = [encode(m) for m in real_messages(Stamper("fuzzer"))]
    frames: list[bytes] = []
    while len(frames) < FRAMES_PER_SOCKET:
        frame = bit_flipped(rng, rng.choice(originals))
        if not is_valid_message(frame):  # a flip that still reads as a message is not hostile: not sent
            frames.append(frame)

    def all_counted_or_dead() -> bool:
        return broker.poll() is not None or sum((malformed_counts(metrics_port) - before).values()) >= len(frames)

    with zmq_socket(zmq.DEALER, site.bus_config.request_endpoint) as dealer:
        assert send_all(dealer, [[frame] for frame in frames]) == len(frames)
        wait_for(all_counted_or_dead, 30, f"the broker to count {len(frames)} malformed frames")
    assert broker.poll() is None, "the broker died on a bit-flipped message"
    assert sum((malformed_counts(metrics_port) - before).values()) == len(frames), "each frame counted once"
    result = complete_a_candidate(site, processes, "after-flips-worker")
    assert result is not None and result.bencher_id == "after-flips-worker"

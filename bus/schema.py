"""Every message on the hpcrl bus, and the only encoder/decoder pair for them.

The wire format is msgpack: each message is one msgpack map whose `kind` field names its type.
msgspec does the (de)serialisation because it decodes straight into these frozen, typed records
and validates every field on the way in, which is the cellular wall for frames from outside
(docs/protocol.md is the normative description; tests check the two agree).
"""

from __future__ import annotations

import enum
import secrets
import time
import typing
from typing import Annotated, Any, ClassVar, Final, TypeVar

import msgspec

SCHEMA_VERSION: Final = 1
"""Major version of the message schema. Adding an optional field keeps it; removing a field,
changing a type or changing a meaning bumps it. Readers drop messages of any other version."""

# A problem name ends up inside topics (`result.<problem>`), so it may not contain a dot.
ProblemName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_IDENTIFIER_CHARS: Final = 200
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_IDENTIFIER_CHARS)]
# Sequence numbers and counts must fit SQLite's and most languages' signed 64-bit integers.
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ProblemSize = Annotated[int, msgspec.Meta(gt=0, le=2**31 - 1)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0.0)]
MAX_SOURCE_BYTES: Final = 256 * 1024
MAX_DETAIL_CHARS: Final = 4096
SourceCode = Annotated[str, msgspec.Meta(max_length=MAX_SOURCE_BYTES)]


class Verdict(enum.StrEnum):
    """The closed set of benchmark outcomes. Only `ok` carries a speed."""

    OK = "ok"
    COMPILE_ERROR = "compile_error"
    REJECTED = "rejected"
    WRONG_ANSWER = "wrong_answer"
    TIMEOUT = "timeout"
    CRASH = "crash"
    RESOURCE_LIMIT = "resource_limit"
    INFRA_ERROR = "infra_error"
    """Our fault (lost bencher, broker gave up, harness failure); never charged to the policy."""


class Role(enum.StrEnum):
    BROKER = "broker"
    BENCHER = "bencher"
    TRAINER = "trainer"
    ARCHIVE = "archive"
    CLIENT = "client"


class PeerState(enum.StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"
    """Finishing in-flight work; takes no new candidates."""
    STOPPING = "stopping"
    """Last heartbeat before a clean exit; the broker forgets the peer at once."""


class AckStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    """Queued (candidate) or journaled at `bus_seq` (event)."""
    DUPLICATE = "duplicate"
    """Already queued or running (candidate), or already journaled at `bus_seq` (event)."""
    DONE = "done"
    """Candidate whose result is already journaled at `bus_seq`; fetch it from there."""
    REJECTED = "rejected"
    """Well-formed but not acceptable; `reason` says why. Re-sending will not help."""


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", gc=False):
    """Envelope fields carried by every message.

    `gc=False`: messages hold only scalars, strings and flat containers, never reference cycles, so
    the cyclic garbage collector need not scan the many thousands a busy process keeps alive."""

    v: int = SCHEMA_VERSION
    id: Identifier
    """Unique message id (opaque). A re-transmission of the same message reuses it; a new attempt
    at a candidate is a new message with a new id and the same candidate_id."""
    sender: Identifier
    """Name of the sending process, e.g. `bencher-node07-3`."""
    seq: NonNegativeInt
    """Per-sender sequence number, +1 per message the sender creates."""
    sent_at: float
    """Unix time in seconds when the sender created the message."""


class Event(Message, frozen=True, kw_only=True):
    """A message that is published on the event socket under a topic."""

    bus_seq: NonNegativeInt = 0
    """Position in the broker's journal (1, 2, ...); 0 for ephemeral events and before journaling."""
    topic_seq: NonNegativeInt = 0
    """Position within its topic (contiguous from 1); 0 for ephemeral events."""

    journaled: ClassVar[bool] = True

    @property
    def topic(self) -> str:
        raise NotImplementedError


# ---------------------------------------------------------------- work items


class Candidate(Message, frozen=True, kw_only=True, tag="candidate"):
    """A C program to benchmark. Submitter -> broker -> one bencher."""

    candidate_id: Identifier
    """Idempotency key: every re-send of this candidate carries the same id."""
    run: Identifier
    problem: ProblemName
    size: ProblemSize
    stage: NonNegativeInt = 0
    policy_version: NonNegativeInt = 0
    source: SourceCode
    attempt: Annotated[int, msgspec.Meta(ge=1)] = 1
    remeasure: bool = False
    """Measure it even if a bencher has a cached result for the same source (confirmation runs)."""

    @property
    def topic_of_result(self) -> str:
        return f"result.{self.problem}"


class Result(Event, frozen=True, kw_only=True, tag="result"):
    """The verdict and measurement of one candidate. Bencher -> broker -> everyone."""

    candidate_id: Identifier
    run: Identifier
    problem: ProblemName
    size: ProblemSize
    stage: NonNegativeInt = 0
    policy_version: NonNegativeInt = 0
    attempt: Annotated[int, msgspec.Meta(ge=1)] = 1
    source: SourceCode
    verdict: Verdict
    metric: str = ""
    """The problem's figure of merit: `gflops` or `gbps` (GB/s); the unit of rate_* and *_rate. Empty from a
    bencher that predates the problem suite: read gflops_* then."""
    rate_median: NonNegativeFloat = 0.0
    """Median rate of the timed calls in the metric's unit: what rewards and `hpcrl eval` use."""
    rate_min: NonNegativeFloat = 0.0
    rate_max: NonNegativeFloat = 0.0
    gflops_median: NonNegativeFloat = 0.0
    """Floating-point rate (0 when the problem counts no flops): the figure checked against the node's peak."""
    gflops_min: NonNegativeFloat = 0.0
    gflops_max: NonNegativeFloat = 0.0
    naive_rate: NonNegativeFloat = 0.0
    """The node's rate for the problem's naive reference at this size (0: not measured)."""
    vendor_rate: NonNegativeFloat = 0.0
    """The node's rate for the problem's vendor-library baseline (0: none, or not measured)."""
    cv: NonNegativeFloat = 0.0
    """Coefficient of variation of the timed repetitions (std / mean)."""
    repetitions: NonNegativeInt = 0
    compile_s: NonNegativeFloat = 0.0
    run_s: NonNegativeFloat = 0.0
    detail: Annotated[str, msgspec.Meta(max_length=MAX_DETAIL_CHARS)] = ""
    bencher_id: str = ""
    host: str = ""
    slurm_job_id: str = ""
    calibration_gflops: NonNegativeFloat = 0.0
    """The node's latest reference-kernel figure, so drifting nodes are visible."""
    cached: bool = False
    threads: NonNegativeInt = 0
    """Cores (OpenMP threads) the candidate was allowed to use."""
    node_class: str = ""
    """The kind of node that measured it: results are comparable (and cached) within a class."""

    @property
    def topic(self) -> str:
        return f"result.{self.problem}"

    @property
    def rates(self) -> tuple[float, float, float]:
        """(median, min, max) rate in the problem's metric (a bencher that predates metrics rated every problem
        in GFLOPS, and sent no `metric`)."""
        if self.metric:
            return self.rate_median, self.rate_min, self.rate_max
        return self.gflops_median, self.gflops_min, self.gflops_max

    @property
    def rate(self) -> float:
        """The median rate in the problem's metric."""
        return self.rates[0]

    @classmethod
    def for_candidate(cls, candidate: Candidate, **fields: object) -> dict[str, object]:
        """The candidate-derived fields of its result, to be completed by the caller."""
        return dict(
            candidate_id=candidate.candidate_id,
            run=candidate.run,
            problem=candidate.problem,
            size=candidate.size,
            stage=candidate.stage,
            policy_version=candidate.policy_version,
            attempt=candidate.attempt,
            source=candidate.source,
            **fields,
        )


class Ready(Message, frozen=True, kw_only=True, tag="ready"):
    """Worker -> broker: `credit` more candidates may be sent to me (credit-based dispatch). Sent
    on every (re)connection for the free slots; afterwards each result of a candidate the broker
    gave this connection returns one credit by itself."""

    credit: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 1


class Release(Message, frozen=True, kw_only=True, tag="release"):
    """Worker -> broker: give these candidates to another worker (drain on SIGTERM)."""

    candidate_ids: Annotated[list[Identifier], msgspec.Meta(max_length=1024)]
    reason: str = ""


# ---------------------------------------------------------------- events


class StageChange(Event, frozen=True, kw_only=True, tag="stage_change"):
    """The archive moved a problem to another stage of its curriculum."""

    problem: ProblemName
    from_stage: NonNegativeInt
    to_stage: NonNegativeInt
    reason: str = ""
    techniques: list[str] = []
    """Techniques permitted in `to_stage`."""
    stats: dict[str, float] = {}

    @property
    def topic(self) -> str:
        return f"stage.{self.problem}"


TECHNIQUES: Final[tuple[str, ...]] = (
    "loop_order",
    "tiling",
    "unrolling",
    "register_blocking",
    "simd_intrinsics",
    "simd_pragma",
    "openmp",
    "packing",
    "transpose",
    "prefetch",
)
"""The optimisation-technique labels of `Archived.techniques` and `StageChange.techniques`, in their
canonical order (the archive detects them; docs/archive.md defines them; the trainer prompts with them)."""

DEFAULT_STAGE_LADDER: Final[tuple[tuple[str, ...], ...]] = (
    ("loop_order", "transpose"),
    ("loop_order", "transpose", "tiling"),
    ("loop_order", "transpose", "tiling", "unrolling", "register_blocking", "simd_pragma", "simd_intrinsics"),
    (
        "loop_order", "transpose", "tiling", "unrolling", "register_blocking", "simd_pragma", "simd_intrinsics",
        "openmp", "packing", "prefetch",
    ),
    TECHNIQUES,
)  # fmt: skip
"""The archive's default curriculum (issue 4): the techniques each stage permits. Loop order first, then
tiling, then the in-core techniques, then threads and data layout, then everything."""


class AddStatus(enum.StrEnum):
    """What adding a result did to the archive (pyribs' vocabulary)."""

    NOT_ADDED = "not_added"
    IMPROVE_EXISTING = "improve_existing"
    NEW = "new"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    """It would become its problem's best: a second measurement decides (see Archived.confirmation_of)."""


class Archived(Event, frozen=True, kw_only=True, tag="archived"):
    """The archive stored a result: its techniques, its cell, and what it did to the archive."""

    candidate_id: Identifier
    run: Identifier
    problem: ProblemName
    size: ProblemSize
    stage: NonNegativeInt = 0
    """The stage the candidate was generated for (copied from the result)."""
    current_stage: NonNegativeInt = 0
    """The problem's stage when the archive stored the result."""
    policy_version: NonNegativeInt = 0
    verdict: Verdict
    objective: NonNegativeFloat = 0.0
    """The rate that counts for the archive, in the problem's metric (ok results; 0 otherwise)."""
    techniques: list[str] = []
    parse_error: str = ""
    """Why no techniques could be detected (the source did not parse); empty otherwise."""
    cell: str = ""
    status: AddStatus = AddStatus.NOT_ADDED
    outside_stage: bool = False
    """It uses techniques its stage does not permit; the trainer decides its reward."""
    confirmation_of: str = ""
    """Set on a confirmation measurement: the candidate it confirms."""

    @property
    def topic(self) -> str:
        return f"archive.{self.problem}"


class TrainerStep(Event, frozen=True, kw_only=True, tag="trainer_step"):
    """One optimisation step of the trainer."""

    run: Identifier
    step: NonNegativeInt
    policy_version: NonNegativeInt = 0
    reward_mean: float = 0.0
    reward_std: float = 0.0
    reward_max: float = 0.0
    gflops_mean: float = 0.0
    gflops_max: float = 0.0
    loss: float = 0.0
    kl: float = 0.0
    step_s: NonNegativeFloat = 0.0
    verdicts: dict[str, int] = {}
    stage: NonNegativeInt = 0
    """The stage the batch's prompts were built for (0: the problem is not staged)."""
    idle_ratio: NonNegativeFloat = 0.0
    """Share of the step the trainer waited for results."""
    bencher_idle_ratio: NonNegativeFloat = 0.0
    """Share of the benchers' time during the step not spent compiling or running this run's candidates."""

    @property
    def topic(self) -> str:
        return "trainer.step"


class Heartbeat(Event, frozen=True, kw_only=True, tag="heartbeat"):
    """Liveness of one process. Sent to the broker every heartbeat interval; the broker sends its
    own to every live peer and publishes all of them (not journaled) on `heartbeat.<role>`."""

    role: Role
    incarnation: Identifier
    """Random per process start: a changed value means the peer restarted."""
    state: PeerState = PeerState.IDLE
    in_flight: Annotated[list[Identifier], msgspec.Meta(max_length=1024)] = []
    """Candidates this process is running (workers)."""
    host: str = ""
    pid: NonNegativeInt = 0
    slurm_job_id: str = ""
    # Filled by the broker only:
    journal_head: NonNegativeInt = 0
    """Highest bus_seq journaled so far."""
    topic_heads: dict[str, NonNegativeInt] = {}
    """Highest topic_seq per journaled topic: lets subscribers detect a lost last event."""
    workers: NonNegativeInt = 0
    """Live workers the broker knows."""
    worker_names: Annotated[list[str], msgspec.Meta(max_length=100_000)] = []
    """Names of the live workers: only in the copy published on `heartbeat.broker` (the copies sent
    to each peer leave it empty, so their size does not grow with the cluster)."""
    queued: NonNegativeInt = 0
    """Candidates waiting for a worker."""

    journaled: ClassVar[bool] = False

    @property
    def topic(self) -> str:
        return f"heartbeat.{self.role.value}"


# ---------------------------------------------------------------- broker dialogue


class AckEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    ref: Identifier
    """Id of the acknowledged message."""
    status: AckStatus
    bus_seq: NonNegativeInt = 0
    reason: str = ""


class Ack(Message, frozen=True, kw_only=True, tag="ack"):
    """Broker -> peer: what became of the peer's candidates, events and releases."""

    entries: list[AckEntry]


class FetchRequest(Message, frozen=True, kw_only=True, tag="fetch"):
    """Peer -> broker: journaled events after `after_bus_seq` whose topic starts with a prefix."""

    prefixes: list[str] = msgspec.field(default_factory=lambda: [""])
    """Topic prefixes (byte-wise, as zmq matches them); an empty list or [""] matches every topic."""
    after_bus_seq: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Any unsigned 64-bit value; one beyond the head is answered with an empty, complete page."""
    limit: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 1000
    latest_only: bool = False
    """Return only the newest event of every matching topic (a snapshot, e.g. current stages)."""


class FetchReply(Message, frozen=True, kw_only=True, tag="fetch_reply"):
    """Broker -> peer: one page of journaled events, in bus_seq order."""

    ref: Identifier
    """Id of the FetchRequest."""
    events: list[msgspec.Raw]
    """Each element is an encoded event exactly as published."""
    upto_bus_seq: NonNegativeInt
    """Every matching event with after_bus_seq < bus_seq <= upto_bus_seq is in `events`."""
    head_bus_seq: NonNegativeInt
    complete: bool
    """True when upto_bus_seq == head_bus_seq: ask again only after a gap."""
    evicted_through: NonNegativeInt = 0
    """Events with bus_seq <= this may have been dropped by journal retention."""
    topic_heads: dict[str, NonNegativeInt] = {}
    """In complete replies: highest topic_seq of every matching topic."""


AnyMessage = (
    Candidate
    | Result
    | Ready
    | Release
    | StageChange
    | Archived
    | TrainerStep
    | Heartbeat
    | Ack
    | FetchRequest
    | FetchReply
)
MESSAGE_TYPES: Final[tuple[type[Message], ...]] = typing.get_args(AnyMessage)
KINDS: Final[frozenset[str]] = frozenset(t.__struct_config__.tag for t in MESSAGE_TYPES)  # type: ignore[misc]
EVENT_TYPES: Final = tuple(t for t in MESSAGE_TYPES if issubclass(t, Event))
_KIND_OF_TYPE: Final[dict[type[Message], str]] = {t: str(t.__struct_config__.tag) for t in MESSAGE_TYPES}


def kind_of(message: Message) -> str:
    """The message's `kind` tag, e.g. "candidate"."""
    return _KIND_OF_TYPE[type(message)]


# ---------------------------------------------------------------- codec


M = TypeVar("M", bound=Message)


class FrameError(Exception):
    """A frame that is not a message this reader can use. `reason` is one of FRAME_ERROR_REASONS.
    `ref` and `kind` are the frame's `id` and `kind` when it is a map that carries them as usable
    strings (so the broker can name the message in a refusal), else empty."""

    def __init__(self, reason: str, detail: str, ref: str = "", kind: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.ref = ref
        self.kind = kind


FRAME_ERROR_REASONS: Final = ("not_msgpack", "invalid", "unknown_kind", "version", "framing", "unexpected")
"""not_msgpack: undecodable bytes; invalid: a known kind with missing or ill-typed fields; unknown_kind:
a kind this reader does not know (from a newer writer); version: another schema version; framing: wrong
frame count or junk on the event socket; unexpected: a valid message sent where it has no meaning."""


class _EnvelopeProbe(msgspec.Struct):
    kind: object = None
    v: object = None
    id: object = None


# What msgspec raises for bytes that are not (sane) msgpack: malformed input, invalid UTF-8 in a
# string or key, nesting deep enough to exhaust the recursion limit.
_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyMessage)
_probe_decoder = msgspec.msgpack.Decoder(_EnvelopeProbe)
_keys_decoder = msgspec.msgpack.Decoder(dict[str, msgspec.Raw])
_FIELD_COUNT = {t: len(t.__struct_fields__) + 1 for t in MESSAGE_TYPES}  # +1 for `kind`


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def decode(frame: bytes | memoryview) -> AnyMessage:
    """Decode one frame into its message, or raise FrameError saying why it is unusable."""
    try:
        message: AnyMessage = _decoder.decode(frame)
    except msgspec.ValidationError as error:
        raise _classify(frame, error) from None
    except _UNDECODABLE as error:
        raise FrameError("not_msgpack", f"{type(error).__name__}: {error}") from None
    if message.v != SCHEMA_VERSION:
        raise FrameError("version", f"schema version {message.v}, this reader speaks {SCHEMA_VERSION}")
    return message


def extra_field_names(frame: bytes | memoryview, message: Message) -> list[str]:
    """Fields in the frame that this reader's schema does not know (sent by a newer writer)."""
    if _map_length(frame) == _FIELD_COUNT[type(message)]:
        return []  # every field present exactly once: nothing extra (what our own encoder writes)
    known = set(type(message).__struct_fields__) | {"kind"}
    try:
        keys = _keys_decoder.decode(frame)
    except (msgspec.ValidationError, *_UNDECODABLE):
        return ["?"]  # extra entries that do not even decode as a map of named fields
    return sorted(key for key in keys if key not in known)


def _map_length(frame: bytes | memoryview) -> int:
    first = frame[0]
    if 0x80 <= first <= 0x8F:
        return first & 0x0F
    if first == 0xDE:
        return int.from_bytes(frame[1:3], "big")
    if first == 0xDF:
        return int.from_bytes(frame[1:5], "big")
    return 0


def _classify(frame: bytes | memoryview, error: msgspec.ValidationError) -> FrameError:
    try:
        probe = _probe_decoder.decode(frame)
    except (msgspec.ValidationError, *_UNDECODABLE):
        return FrameError("invalid", str(error))
    ref = probe.id if isinstance(probe.id, str) and 0 < len(probe.id) <= MAX_IDENTIFIER_CHARS else ""
    kind = probe.kind if isinstance(probe.kind, str) and probe.kind in KINDS else ""
    if probe.v is not None and probe.v != SCHEMA_VERSION:
        return FrameError("version", f"schema version {probe.v!r}, this reader speaks {SCHEMA_VERSION}")
    if isinstance(probe.kind, str) and probe.kind not in KINDS:
        return FrameError("unknown_kind", f"kind {probe.kind!r}", ref=ref)
    return FrameError("invalid", str(error), ref=ref, kind=kind)


def to_json_dict(message: Message) -> dict[str, object]:
    """A JSON-ready dict of the message (for `hpcrl tail` and logs), `kind` included."""
    return msgspec.to_builtins(message)  # type: ignore[no-any-return]


class Stamper:
    """Creates the messages of one process, filling in the envelope (id, sender, seq, sent_at)."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        self.incarnation = secrets.token_hex(8)
        self._seq = 0

    def make(self, cls: type[M], **fields: Any) -> M:
        """A new message. `fields` may set `id`: a publisher that must re-publish the same event after
        a restart derives it from what the event is about, so the broker de-duplicates it."""
        return cls(**{**self._envelope(), **fields})

    def remake(self, message: M, **changes: Any) -> M:
        """A new message (fresh envelope) with the fields of `message`, some changed."""
        return msgspec.structs.replace(message, **self._envelope(), **changes)

    def _envelope(self) -> dict[str, Any]:
        self._seq += 1
        return {
            "id": f"{self.incarnation}-{self._seq}",
            "sender": self.sender,
            "seq": self._seq,
            "sent_at": time.time(),
        }

"""docs/protocol.md is the normative protocol: these tests fail when it stops describing bus.schema.

Every message kind has a section whose heading names it (`` `candidate` ``), and that section's field
table lists exactly the type's fields (plus `kind`), with the right msgpack type, the right
required/default column and the right default. Enum values, named constants and the worked byte-level
example are checked against the code too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from bus import protocol, stream
from bus.schema import (
    EVENT_TYPES,
    KINDS,
    MAX_SOURCE_BYTES,
    MESSAGE_TYPES,
    SCHEMA_VERSION,
    AckEntry,
    AckStatus,
    PeerState,
    Ready,
    Role,
    Verdict,
    decode,
    encode,
)

_KIND_OF_EVENT_TYPE = {t: str(t.__struct_config__.tag) for t in EVENT_TYPES}
DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
DOCUMENTED_TYPES = (*MESSAGE_TYPES, AckEntry)

# msgspec's view of a field type -> the first word of the doc's "msgpack type" column.
MSGPACK_TYPE_WORDS = {
    msgspec.inspect.IntType: "int",
    msgspec.inspect.FloatType: "float",
    msgspec.inspect.StrType: "str",
    msgspec.inspect.EnumType: "str",
    msgspec.inspect.BoolType: "bool",
    msgspec.inspect.ListType: "array",
    msgspec.inspect.DictType: "map",
}


@dataclass(frozen=True)
class Section:
    level: int
    title: str
    body: list[str]


@dataclass(frozen=True)
class Row:
    name: str
    msgpack_type: str
    unit: str
    required: str
    meaning: str


def read_doc() -> str:
    assert DOC.is_file(), f"{DOC} is missing: the protocol must be written down (house style, guideline 4)"
    return DOC.read_text(encoding="utf-8")


def split_sections(text: str) -> list[Section]:
    """Headings outside fenced code blocks, each with the lines up to the next heading of its level or above."""
    headings: list[tuple[int, int, str]] = []  # (line index, level, title)
    lines = text.splitlines()
    fenced = False
    for index, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = re.match(r"^(#{1,6})\s+(.*)$", line)
        if match and not fenced:
            headings.append((index, len(match.group(1)), match.group(2).strip()))
    sections = []
    for position, (index, level, title) in enumerate(headings):
        end = next((i for i, lvl, _ in headings[position + 1 :] if lvl <= level), len(lines))
        sections.append(Section(level, title, lines[index + 1 : end]))
    return sections


def section_naming(token: str) -> Section:
    """The one section whose heading names `token` in backticks, e.g. `` `fetch_reply` ``."""
    found = [s for s in split_sections(read_doc()) if f"`{token}`" in s.title]
    assert found, f"docs/protocol.md has no heading naming `{token}`"
    assert len(found) == 1, f"several headings name `{token}`: {[s.title for s in found]}"
    return found[0]


def table_rows(section: Section) -> dict[str, Row]:
    """Rows of the field table(s) in a section, keyed by the backticked field name in the first cell."""
    rows: dict[str, Row] = {}
    for line in section.body:
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] in ("field", "") or set(cells[0]) <= set("-: "):
            continue
        name = cells[0].strip("`")
        assert len(cells) == 5, (
            f"row {cells[0]} of '{section.title}' needs 5 cells (name, type, unit, required, meaning)"
        )
        assert name not in rows, f"field {name} is listed twice in '{section.title}'"
        rows[name] = Row(name, *cells[1:])
    return rows


def heading_token(message_type: type[msgspec.Struct]) -> str:
    tag = message_type.__struct_config__.tag
    return tag if isinstance(tag, str) else message_type.__name__


def fields_of(message_type: type[msgspec.Struct]) -> dict[str, msgspec.inspect.Field]:
    info = msgspec.inspect.type_info(message_type)
    assert isinstance(info, msgspec.inspect.StructType)
    return {field.name: field for field in info.fields}


def type_id(message_type: type) -> str:
    return message_type.__name__


# ---------------------------------------------------------------- every kind and every field


def test_protocol_doc_exists_and_names_the_schema_version() -> None:
    assert f"SCHEMA_VERSION = {SCHEMA_VERSION}" in read_doc()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_message_kind_has_a_section_with_a_field_table(kind: str) -> None:
    section = section_naming(kind)
    rows = table_rows(section)
    assert "kind" in rows, f"the table of `{kind}` has no `kind` row"
    assert f'"{kind}"' in rows["kind"].meaning, f"the `kind` row of `{kind}` does not give its tag value"


@pytest.mark.parametrize("message_type", DOCUMENTED_TYPES, ids=type_id)
def test_every_field_of_every_message_is_in_its_table(message_type: type[msgspec.Struct]) -> None:
    rows = table_rows(section_naming(heading_token(message_type)))
    expected = set(message_type.__struct_fields__)
    if message_type.__struct_config__.tag_field:
        expected.add(message_type.__struct_config__.tag_field)
    missing = sorted(expected - set(rows))
    stale = sorted(set(rows) - expected)
    assert not missing, f"{message_type.__name__} fields missing from docs/protocol.md: {missing}"
    assert not stale, f"docs/protocol.md lists {message_type.__name__} fields the schema does not have: {stale}"


@pytest.mark.parametrize("message_type", DOCUMENTED_TYPES, ids=type_id)
def test_required_column_and_defaults_match_the_schema(message_type: type[msgspec.Struct]) -> None:
    rows = table_rows(section_naming(heading_token(message_type)))
    for name, field in fields_of(message_type).items():
        cell = rows[name].required
        if field.required:
            assert cell == "required", f"{message_type.__name__}.{name} is required, the doc says {cell!r}"
            continue
        default = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
        written = json.dumps(msgspec.to_builtins(default))
        assert cell.startswith(f"default `{written}`"), (
            f"{message_type.__name__}.{name} defaults to {written}, the doc says {cell!r}"
        )


@pytest.mark.parametrize("message_type", DOCUMENTED_TYPES, ids=type_id)
def test_msgpack_type_column_matches_the_schema(message_type: type[msgspec.Struct]) -> None:
    rows = table_rows(section_naming(heading_token(message_type)))
    for name, field in fields_of(message_type).items():
        cell = rows[name].msgpack_type
        word = MSGPACK_TYPE_WORDS[type(field.type)]
        assert re.split(r"[\s,]", cell.strip("`"), maxsplit=1)[0] == word, (
            f"{message_type.__name__}.{name} is a msgpack {word}, the doc says {cell!r}"
        )
        if isinstance(field.type, msgspec.inspect.EnumType):
            assert f"`{field.type.cls.__name__}`" in cell, f"{message_type.__name__}.{name} should name its enum"


# ---------------------------------------------------------------- enums, constants, topics


@pytest.mark.parametrize("verdict", list(Verdict), ids=lambda v: v.value)
def test_every_verdict_has_a_row_in_the_verdict_table(verdict: Verdict) -> None:
    body = "\n".join(_section_titled("Enumerations").body)
    assert f"| `{verdict.value}` |" in body, f"verdict {verdict.value!r} has no row in the Verdict table"


@pytest.mark.parametrize("enum", [AckStatus, PeerState, Role], ids=lambda e: e.__name__)
def test_every_value_of_the_other_enums_is_documented(enum: type) -> None:
    body = "\n".join(_section_titled("Enumerations").body)
    for member in enum:
        assert f"`{member.value}`" in body, f"{enum.__name__}.{member.name} ({member.value!r}) is not documented"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCHEMA_VERSION", SCHEMA_VERSION),
        ("HEARTBEAT_INTERVAL_S", protocol.HEARTBEAT_INTERVAL_S),
        ("HEARTBEAT_LIVENESS", protocol.HEARTBEAT_LIVENESS),
        ("MAX_BATCH_MESSAGES", protocol.MAX_BATCH_MESSAGES),
        ("MAX_FETCH_SCAN_ROWS", protocol.MAX_FETCH_SCAN_ROWS),
        ("FETCH_PAGE_EVENTS", stream.FETCH_PAGE_EVENTS),
        ("FETCH_RETRY_S", stream.FETCH_RETRY_S),
        ("MAX_SOURCE_BYTES", MAX_SOURCE_BYTES),
        ("MAX_UNACKED_SENDS", protocol.MAX_UNACKED_SENDS),
        ("MAX_REFUSAL_REASON_CHARS", protocol.MAX_REFUSAL_REASON_CHARS),
    ],
)
def test_named_constants_are_documented_with_their_values(name: str, value: object) -> None:
    table = "\n".join(_section_titled("Constants and defaults").body)
    match = re.search(rf"^\| `{name}` \| ([^|]+)\|", table, re.MULTILINE)
    assert match, f"{name} has no row in the constants table"
    assert match.group(1).split()[0] == str(value), f"{name} is {value}, the doc says {match.group(1).strip()!r}"


@pytest.mark.parametrize(
    "topic",
    [
        protocol.RESULT_TOPIC_PREFIX + "<problem>",
        protocol.STAGE_TOPIC_PREFIX + "<problem>",
        protocol.ARCHIVE_TOPIC_PREFIX + "<problem>",
        "trainer.step",
        protocol.HEARTBEAT_TOPIC_PREFIX + "<role>",
        protocol.BROKER_HEARTBEAT_TOPIC,
    ],
)
def test_every_topic_is_in_the_topic_table(topic: str) -> None:
    assert f"`{topic}`" in "\n".join(_section_titled("Topics").body)


@pytest.mark.parametrize("kind", sorted(_KIND_OF_EVENT_TYPE.values()))
def test_every_event_kind_is_in_every_list_of_event_kinds(kind: str) -> None:
    """The terminology table and the envelope section each list the event kinds in one line."""
    terms = "\n".join(_section_titled("Goals and terminology").body)
    event_row = next(line for line in terms.splitlines() if line.startswith("| event |"))
    assert f"`{kind}`" in event_row, f"section 1's definition of an event does not list `{kind}`"
    envelope = "\n".join(_section_titled("The envelope").body)
    events_line = next(line for line in envelope.splitlines() if line.startswith("Events ("))
    assert f"`{kind}`" in events_line, f"section 4.3's list of events does not name `{kind}`"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_is_in_the_message_index(kind: str) -> None:
    section = next(s for s in split_sections(read_doc()) if s.title.endswith(". Messages"))
    index = "\n".join(section.body[:20])
    assert re.search(rf"^\| `{kind}` \|", index, re.MULTILINE), f"`{kind}` is missing from section 5's index table"


def test_the_gap_recovery_rules_read_evicted_through_and_define_since() -> None:
    rules = "\n".join(_section_titled("Gap recovery").body)
    assert "r.evicted_through" in rules, "the recovery rules never read the fetch reply's evicted_through"
    for field in stream.EventsLost.__dataclass_fields__:
        assert f"{field}" in rules, f"EventsLost.{field} is not explained in section 8.4"
    terms = "\n".join(_section_titled("Goals and terminology").body)
    assert re.search(r"^\| `since` \|", terms, re.MULTILINE), "`since` is not defined"


def test_the_broker_heartbeat_section_says_the_per_peer_copy_lacks_worker_names() -> None:
    body = "\n".join(_section_titled("Broker heartbeats").body)
    assert "same bytes" not in body
    assert "`worker_names`" in body


def test_the_key_file_example_is_a_certificate_zmq_reads() -> None:
    body = "\n".join(_section_titled("Security").body)
    match = re.search(r"```\n(.*?)```", body, re.DOTALL)
    assert match, "section 10 needs an example key file"
    import tempfile

    import zmq.auth

    with tempfile.NamedTemporaryFile("w", suffix=".key") as key_file:
        key_file.write("\n".join(line.removeprefix("  ") for line in match.group(1).splitlines()) + "\n")
        key_file.flush()
        public, secret = zmq.auth.load_certificate(key_file.name)
    assert public is not None and len(public) == 40 and secret is None


def test_worked_example_is_exactly_what_the_codec_writes() -> None:
    body = "\n".join(_section_titled("Worked example").body)
    match = re.search(r"```hex\n(.*?)```", body, re.DOTALL)
    assert match, "the worked example needs a ```hex block"
    frame = bytes.fromhex(match.group(1))
    described = Ready(id="5f1c0e2a9b3d4c71-3", sender="bencher-node07-0", seq=3, sent_at=1700000000.25, credit=1)
    assert frame == encode(described), "the hex is not what bus.schema.encode writes for the described message"
    assert decode(frame) == described
    assert f"{len(frame)}-byte frame" in body


# ---------------------------------------------------------------- helpers


def _section_titled(words: str) -> Section:
    found = [s for s in split_sections(read_doc()) if words in s.title]
    assert found, f"docs/protocol.md has no section titled '{words}'"
    return found[0]

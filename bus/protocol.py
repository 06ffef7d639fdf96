"""Named protocol constants: timings, batch sizes and topic names shared by every bus process."""

from typing import Final

HEARTBEAT_INTERVAL_S: Final = 1.0
"""Every process sends a heartbeat to the broker this often; the broker answers each live peer."""
HEARTBEAT_LIVENESS: Final = 3
"""A peer silent for this many intervals is dead (its in-flight candidates go back in the queue)."""

MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
"""Largest frame the broker accepts; a peer that sends a larger one is disconnected by zmq
(a candidate's source is capped at 256 Ki characters, so real messages stay far below)."""
MAX_BATCH_MESSAGES: Final = 512
"""Messages one broker loop turn reads per socket before committing, so acks are never held long."""
MAX_FETCH_SCAN_ROWS: Final = 20_000
"""Journal positions (bus_seq values) one fetch reply covers at most, so a filtered fetch over a long
journal is answered page by page instead of stalling the broker."""

TOPIC_SEPARATOR: Final = "."
RESULT_TOPIC_PREFIX: Final = "result."
STAGE_TOPIC_PREFIX: Final = "stage."
ARCHIVE_TOPIC_PREFIX: Final = "archive."
HEARTBEAT_TOPIC_PREFIX: Final = "heartbeat."
BROKER_HEARTBEAT_TOPIC: Final = "heartbeat.broker"

MAX_UNACKED_SENDS: Final = 10
"""Sends of one message (candidate, event, release) to a connected broker without any ack, after which
the sender gives up on it and reports it failed to its owner (with the ack timeout of 5 s: 50 s). A broker
acknowledges within one loop turn, so this only ends messages it drops without a word: frames it cannot
name in a refusal, or an older broker that never refuses."""
MAX_REFUSAL_REASON_CHARS: Final = 1000
"""Longest `reason` the broker writes in a `rejected` ack entry (the decoder's message, cut)."""

"""Socket construction: every bus socket gets explicit LINGER, HWMs, reconnect backoff, ZMTP
heartbeats and (when configured) CURVE, in one place."""

from __future__ import annotations

import itertools
from pathlib import Path

import zmq
import zmq.auth

from bus import protocol
from bus.config import BusConfig, ConfigError

BROKER_KEY_NAME = "broker"
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


def readable(socket: zmq.Socket[bytes]) -> bool:
    """Whether a message is waiting. Draining a socket with this is much cheaper than ending on a
    NOBLOCK receive that raises zmq.Again (an exception object per drain, on the hot path)."""
    return bool(int(socket.getsockopt(_EVENTS)) & _POLLIN)


def configure(socket: zmq.Socket[bytes], cfg: BusConfig) -> zmq.Socket[bytes]:
    socket.setsockopt(zmq.LINGER, int(cfg.linger_s * 1000))
    socket.setsockopt(zmq.SNDHWM, cfg.send_hwm)
    socket.setsockopt(zmq.RCVHWM, cfg.receive_hwm)
    socket.setsockopt(zmq.RECONNECT_IVL, int(cfg.reconnect_interval_s * 1000))
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, int(cfg.reconnect_interval_max_s * 1000))
    # ZMTP-level heartbeats drop half-open TCP connections (a dead host sends no RST), so zmq
    # reconnects instead of queueing into a dead peer forever.
    socket.setsockopt(zmq.HEARTBEAT_IVL, int(cfg.heartbeat_interval_s * 1000))
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(cfg.peer_timeout_s * 1000))
    return socket


def server_socket(ctx: zmq.Context[zmq.Socket[bytes]], kind: int, cfg: BusConfig) -> zmq.Socket[bytes]:
    """A broker-side socket; with CURVE it authenticates every client through ZAP."""
    socket = configure(ctx.socket(kind), cfg)
    # Bound what any peer can make the broker allocate.
    socket.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_FRAME_BYTES)
    if cfg.curve:
        public, secret = load_key_pair(cfg.secret_key_file)
        socket.curve_server = True
        socket.curve_publickey = public
        socket.curve_secretkey = secret
    return socket


def client_socket(ctx: zmq.Context[zmq.Socket[bytes]], kind: int, cfg: BusConfig) -> zmq.Socket[bytes]:
    socket = configure(ctx.socket(kind), cfg)
    if cfg.curve:
        if not cfg.broker_public_key_file:
            raise ConfigError(
                "bus.secret_key_file is set but bus.broker_public_key_file is not: point it at the "
                "broker's public key (broker.key from `hpcrl keys`)"
            )
        public, secret = load_key_pair(cfg.secret_key_file)
        broker_public, _ = zmq.auth.load_certificate(cfg.broker_public_key_file)
        socket.curve_publickey = public
        socket.curve_secretkey = secret
        socket.curve_serverkey = broker_public
    return socket


def load_key_pair(secret_key_file: str) -> tuple[bytes, bytes]:
    try:
        public, secret = zmq.auth.load_certificate(secret_key_file)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot read CURVE key {secret_key_file}: {error}; regenerate it with `hpcrl keys`"
        ) from None
    if secret is None:
        raise ConfigError(
            f"{secret_key_file} holds no secret key: point bus.secret_key_file at NAME.key_secret, not NAME.key"
        )
    return public, secret


def monitor(socket: zmq.Socket[bytes], events: int) -> zmq.Socket[bytes]:
    """A PAIR socket receiving `socket`'s monitor events, on an inproc address unique to this call.
    (pyzmq's default address is derived from the socket's file descriptor, which the OS reuses:
    a client opened right after another one closed could be handed the old, dead monitor.)"""
    return socket.get_monitor_socket(events, addr=f"inproc://hpcrl-monitor-{next(_monitor_ids)}")


def close_monitored(socket: zmq.Socket[bytes], monitor_socket: zmq.Socket[bytes]) -> None:
    socket.disable_monitor()
    monitor_socket.close(linger=0)
    socket.close()


_monitor_ids = itertools.count(1)


def generate_keys(directory: Path, names: list[str]) -> list[Path]:
    """Create CURVE key pairs `NAME.key` (public) and `NAME.key_secret` in `directory`, plus an
    `allowed/` directory holding the public keys of every non-broker name."""
    directory.mkdir(parents=True, exist_ok=True)
    allowed = directory / "allowed"
    allowed.mkdir(exist_ok=True)
    written = []
    for name in names:
        if (directory / f"{name}.key_secret").exists():
            raise FileExistsError(f"{directory / name}.key_secret exists: remove it first or pick another --dir")
        public_file, secret_file = zmq.auth.create_certificates(str(directory), name)
        Path(secret_file).chmod(0o600)
        written += [Path(public_file), Path(secret_file)]
        if name != BROKER_KEY_NAME:
            (allowed / f"{name}.key").write_bytes(Path(public_file).read_bytes())
    return written

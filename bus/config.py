"""Configuration: one TOML file for every process, one frozen dataclass per section, env overrides.

Each process reads the sections it needs (`[bus]` for everyone, `[broker]` for the broker, ...).
`HPCRL_<SECTION>__<FIELD>` environment variables override the file, e.g.
`HPCRL_BUS__REQUEST_ENDPOINT=tcp://head01:5555`. Unknown keys in a section are errors, so a typo
fails at start instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bus import protocol

ENV_PREFIX = "HPCRL_"


class ConfigError(ValueError):
    """A configuration problem; the message says which setting and how to fix it."""


@dataclass(frozen=True)
class BusConfig:
    """`[bus]`: how every process reaches the broker. All processes of a run must agree."""

    request_endpoint: str = "tcp://127.0.0.1:5555"
    """ROUTER endpoint of the broker (candidates, results, acks, heartbeats, fetches)."""
    event_endpoint: str = "tcp://127.0.0.1:5556"
    """XPUB endpoint of the broker (every event, by topic)."""
    secret_key_file: str = ""
    """This process's CURVE secret key file from `hpcrl keys` (`NAME.key_secret`). Empty: no
    encryption, which is allowed only for loopback, ipc:// and inproc:// endpoints."""
    broker_public_key_file: str = ""
    """Clients: the broker's public key file (`broker.key`). Required with secret_key_file."""
    heartbeat_interval_s: float = protocol.HEARTBEAT_INTERVAL_S
    """Seconds between heartbeats; must be the same in every process of a run."""
    heartbeat_liveness: int = protocol.HEARTBEAT_LIVENESS
    """Missed heartbeats after which a peer counts as dead."""
    send_hwm: int = 100_000
    """Messages queued per peer before sends are dropped (never blocks)."""
    receive_hwm: int = 100_000
    """Messages queued per peer on receive before zmq stops reading from it."""
    linger_s: float = 1.0
    """Seconds a closing socket keeps trying to deliver what it still holds."""
    reconnect_interval_s: float = 0.1
    """First reconnect delay; doubles per failed attempt (zmq's own backoff)."""
    reconnect_interval_max_s: float = 5.0
    """Cap of the reconnect backoff."""

    def __post_init__(self) -> None:
        for name in ("request_endpoint", "event_endpoint"):
            endpoint = getattr(self, name)
            _check_endpoint(f"bus.{name}", endpoint)
            if not is_local_endpoint(endpoint) and not self.secret_key_file:
                raise ConfigError(
                    f"bus.{name} = {endpoint!r} is reachable from other hosts, so it must use CURVE: "
                    "run `hpcrl keys --dir KEYS` and set bus.secret_key_file (and "
                    "bus.broker_public_key_file on clients, broker.allowed_keys_dir on the broker)"
                )
        if self.heartbeat_interval_s <= 0 or self.heartbeat_liveness < 1:
            raise ConfigError("bus.heartbeat_interval_s must be > 0 and bus.heartbeat_liveness >= 1")
        if self.send_hwm < 1 or self.receive_hwm < 1:
            raise ConfigError("bus.send_hwm and bus.receive_hwm must be >= 1")
        if self.secret_key_file:
            _check_file("bus.secret_key_file", self.secret_key_file)
        if self.broker_public_key_file:
            _check_file("bus.broker_public_key_file", self.broker_public_key_file)

    @property
    def curve(self) -> bool:
        return bool(self.secret_key_file)

    @property
    def peer_timeout_s(self) -> float:
        """Silence after which a peer is declared dead."""
        return self.heartbeat_interval_s * self.heartbeat_liveness


@dataclass(frozen=True)
class BrokerConfig:
    """`[broker]`: the `hpcrl bus` daemon."""

    journal_path: str = "hpcrl-journal.sqlite"
    """SQLite file of the replay journal (every journaled event, for gap recovery)."""
    journal_max_events: int = 1_000_000
    """Retention: older events beyond this count are evicted (the newest of each topic stays)."""
    journal_sync: str = "normal"
    """`normal`: survives kill -9 of the broker; `full`: also power loss (fsync per batch)."""
    allowed_keys_dir: str = ""
    """Directory of client public keys (`*.key`) allowed to connect. Required with CURVE."""
    max_dispatches: int = 3
    """Times a candidate is handed out again after its worker died before the broker gives up
    and publishes an `infra_error` result for it."""
    metrics_port: int = 0
    """Port of the Prometheus /metrics endpoint on 127.0.0.1; 0 disables it."""
    metrics_address: str = "127.0.0.1"
    """Address the /metrics endpoint binds."""

    def __post_init__(self) -> None:
        if self.journal_sync not in ("normal", "full"):
            raise ConfigError(f"broker.journal_sync = {self.journal_sync!r}: use 'normal' or 'full'")
        if self.journal_max_events < 100:
            raise ConfigError("broker.journal_max_events must be >= 100")
        if self.max_dispatches < 1:
            raise ConfigError("broker.max_dispatches must be >= 1")
        _check_port("broker.metrics_port", self.metrics_port)
        if self.allowed_keys_dir and not Path(self.allowed_keys_dir).is_dir():
            raise ConfigError(
                f"broker.allowed_keys_dir = {self.allowed_keys_dir!r} is not a directory: "
                "create it and copy the clients' public keys (`*.key` from `hpcrl keys`) into it"
            )


@dataclass(frozen=True)
class ClientConfig:
    """`[client]`: submitters (trainer, `hpcrl submit`, scripts)."""

    result_timeout_s: float = 600.0
    """Seconds to wait for a candidate's result before re-sending it (queueing included)."""
    max_attempts: int = 3
    """Sends of a candidate before giving up with an `infra_error` result."""
    ack_timeout_s: float = 5.0
    """Seconds to wait for the broker's ack before re-sending a message."""

    def __post_init__(self) -> None:
        if self.result_timeout_s <= 0 or self.ack_timeout_s <= 0:
            raise ConfigError("client.result_timeout_s and client.ack_timeout_s must be > 0")
        if self.max_attempts < 1:
            raise ConfigError("client.max_attempts must be >= 1")


@dataclass(frozen=True)
class HpcrlConfig:
    """The sections the bus layer knows. Other packages read their own sections with `section()`."""

    bus: BusConfig
    broker: BrokerConfig
    client: ClientConfig
    source: str
    """Where the settings came from (a path, or `defaults`)."""


C = TypeVar("C")


def read_toml(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: pass an existing --config") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def section(cls: type[C], data: Mapping[str, Any], name: str, env: Mapping[str, str] | None = None) -> C:
    """Build section `name` of the config as `cls`: file values, then environment overrides."""
    env = os.environ if env is None else env
    raw = data.get(name, {})
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table of settings")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"[{name}] has unknown setting(s) {unknown}; valid ones are {sorted(fields)}")
    values = dict(raw)
    prefix = f"{ENV_PREFIX}{name.upper()}__"
    for key, text in env.items():
        if not key.startswith(prefix):
            continue
        field_name = key[len(prefix) :].lower()
        if field_name not in fields:
            raise ConfigError(f"environment variable {key} names no setting of [{name}]; valid: {sorted(fields)}")
        values[field_name] = _parse_env(key, text, hints[field_name])
    for key, value in values.items():
        values[key] = _check_type(f"{name}.{key}", value, hints[key])
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"[{name}]: {error}") from None


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> HpcrlConfig:
    data = read_toml(path)
    return HpcrlConfig(
        bus=section(BusConfig, data, "bus", env),
        broker=section(BrokerConfig, data, "broker", env),
        client=section(ClientConfig, data, "client", env),
        source=str(path) if path else "defaults",
    )


def is_local_endpoint(endpoint: str) -> bool:
    """True for endpoints other hosts cannot reach: loopback TCP, ipc:// and inproc://."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_endpoint(name: str, endpoint: str) -> None:
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
        raise ConfigError(f"{name} = {endpoint!r}: use tcp://HOST:PORT, ipc:///PATH or inproc://NAME")
    if scheme == "tcp":
        port = rest.rsplit(":", 1)[-1]
        if ":" not in rest or not port.isdigit():
            raise ConfigError(f"{name} = {endpoint!r} has no port: write tcp://HOST:PORT")
        if not 1 <= int(port) <= 65535:
            raise ConfigError(f"{name} = {endpoint!r}: port {port} is out of range 1-65535; write tcp://HOST:PORT")


def _check_port(name: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} = {port} is not a TCP port (0 disables, 1-65535)")


def _check_file(name: str, path: str) -> None:
    if not Path(path).is_file():
        raise ConfigError(f"{name} = {path!r} does not exist: generate keys with `hpcrl keys --dir DIR`")


def _parse_env(key: str, text: str, hint: Any) -> Any:
    try:
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint in (int, float, str):
            return hint(text)
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return text  # converted (and checked) by _check_type
    except ValueError:
        raise ConfigError(f"environment variable {key}={text!r} is not a valid {hint.__name__}") from None
    return tomllib.loads(f"value = {text}")["value"]


def _check_type(name: str, value: Any, hint: Any) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum) and not isinstance(value, hint):
        try:
            return hint(value)
        except ValueError:
            choices = ", ".join(repr(member.value) for member in hint)
            raise ConfigError(f"{name} = {value!r} is not one of {choices}") from None
    if isinstance(hint, type) and (not isinstance(value, hint) or (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{name} = {value!r} must be of type {hint.__name__}")
    return value

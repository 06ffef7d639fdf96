"""Configuration: one TOML file, `HPCRL_<SECTION>__<FIELD>` environment overrides on top, and
every mistake a ConfigError that names the setting and the fix, before any socket is opened."""

from __future__ import annotations

import dataclasses
import enum
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from archive.config import ArchiveConfig
from bencher.config import BencherConfig
from bus.config import BrokerConfig, BusConfig, ClientConfig, ConfigError, load_config, read_toml, section
from tests.conftest import HPCRL, REPO
from trainer.config import load_trainer_config

GOOD_TOML = """
[bus]
request_endpoint = "tcp://127.0.0.1:6001"
event_endpoint = "tcp://127.0.0.1:6002"
heartbeat_interval_s = 0.5
heartbeat_liveness = 4

[broker]
journal_path = "/tmp/j.sqlite"
max_dispatches = 5

[client]
result_timeout_s = 60
"""


def write(tmp_path: Path, text: str, name: str = "hpcrl.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_settings_come_from_the_toml_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD_TOML), env={})
    assert config.bus.request_endpoint == "tcp://127.0.0.1:6001"
    assert config.bus.event_endpoint == "tcp://127.0.0.1:6002"
    assert config.bus.heartbeat_interval_s == 0.5
    assert config.bus.peer_timeout_s == pytest.approx(2.0)
    assert config.broker.journal_path == "/tmp/j.sqlite"
    assert config.broker.max_dispatches == 5
    assert config.client.result_timeout_s == 60.0 and isinstance(config.client.result_timeout_s, float)
    assert config.source == str(tmp_path / "hpcrl.toml")


def test_without_a_file_every_setting_has_its_loopback_default() -> None:
    config = load_config(None, env={})
    assert config.bus == BusConfig() and config.broker == BrokerConfig() and config.client == ClientConfig()
    assert config.bus.request_endpoint.startswith("tcp://127.0.0.1:")
    assert config.source == "defaults"


def test_environment_overrides_win_over_the_file(tmp_path: Path) -> None:
    env = {
        "HPCRL_BUS__REQUEST_ENDPOINT": "tcp://127.0.0.1:7001",
        "HPCRL_BUS__HEARTBEAT_LIVENESS": "9",
        "HPCRL_BROKER__MAX_DISPATCHES": "2",
        "HPCRL_CLIENT__ACK_TIMEOUT_S": "1.5",
        "UNRELATED": "ignored",
    }
    config = load_config(write(tmp_path, GOOD_TOML), env=env)
    assert config.bus.request_endpoint == "tcp://127.0.0.1:7001"
    assert config.bus.event_endpoint == "tcp://127.0.0.1:6002", "settings not overridden keep the file's value"
    assert config.bus.heartbeat_liveness == 9
    assert config.broker.max_dispatches == 2
    assert config.client.ack_timeout_s == 1.5


def test_an_unknown_setting_in_a_section_is_an_error_listing_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nrequest_endpont = "tcp://127.0.0.1:6001"\n')
    with pytest.raises(ConfigError, match="request_endpont") as error:
        load_config(path, env={})
    assert "[bus]" in str(error.value)
    assert "'request_endpoint'" in str(error.value) and "'event_endpoint'" in str(error.value)


@pytest.mark.parametrize(
    ("toml", "setting"),
    [
        ('[bus]\nheartbeat_liveness = "three"\n', "bus.heartbeat_liveness"),
        ("[bus]\nheartbeat_interval_s = true\n", "bus.heartbeat_interval_s"),
        ("[bus]\nrequest_endpoint = 5555\n", "bus.request_endpoint"),
        ("[broker]\nmax_dispatches = 2.5\n", "broker.max_dispatches"),
        ("[broker]\nmax_dispatches = true\n", "broker.max_dispatches"),
        ('[client]\nack_timeout_s = "1"\n', "client.ack_timeout_s"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error_naming_the_setting(tmp_path: Path, toml: str, setting: str) -> None:
    with pytest.raises(ConfigError, match=f"{setting} = .* must be of type"):
        load_config(write(tmp_path, toml), env={})


def test_an_environment_value_of_the_wrong_type_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="HPCRL_BUS__HEARTBEAT_LIVENESS='three' is not a valid int"):
        load_config(None, env={"HPCRL_BUS__HEARTBEAT_LIVENESS": "three"})


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:5555", "use tcp://HOST:PORT, ipc:///PATH or inproc://NAME"),
        ("udp://127.0.0.1:5555", "use tcp://HOST:PORT, ipc:///PATH or inproc://NAME"),
        ("tcp://", "use tcp://HOST:PORT, ipc:///PATH or inproc://NAME"),
        ("", "use tcp://HOST:PORT, ipc:///PATH or inproc://NAME"),
        ("tcp://127.0.0.1", "has no port: write tcp://HOST:PORT"),
        ("tcp://127.0.0.1:", "has no port: write tcp://HOST:PORT"),
        ("tcp://127.0.0.1:http", "has no port: write tcp://HOST:PORT"),
        ("tcp://127.0.0.1:99999", "tcp://HOST:PORT"),
    ],
)
def test_a_malformed_endpoint_is_an_error_showing_the_expected_format(endpoint: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=r"bus\.request_endpoint") as error:
        load_config(None, env={"HPCRL_BUS__REQUEST_ENDPOINT": endpoint})
    assert expected in str(error.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing, env={})


def test_a_file_that_is_not_toml_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[bus\nrequest_endpoint = \n"), env={})


def test_a_section_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[bus\] must be a table"):
        load_config(write(tmp_path, 'bus = "tcp://127.0.0.1:5555"\n'), env={})


def test_an_environment_variable_naming_no_setting_is_an_error() -> None:
    with pytest.raises(ConfigError, match="HPCRL_BUS__REQUEST_ENDPONT names no setting of \\[bus\\]") as error:
        load_config(None, env={"HPCRL_BUS__REQUEST_ENDPONT": "tcp://127.0.0.1:7001"})
    assert "'request_endpoint'" in str(error.value)


@pytest.mark.parametrize(
    ("toml", "fix"),
    [
        ('[broker]\njournal_sync = "always"\n', "use 'normal' or 'full'"),
        ("[broker]\nmetrics_port = 70000\n", "broker.metrics_port = 70000 is not a TCP port"),
        ('[broker]\nallowed_keys_dir = "/nonexistent/allowed"\n', "hpcrl keys"),
        ("[bus]\nheartbeat_interval_s = 0\n", "bus.heartbeat_interval_s must be > 0"),
        ("[client]\nmax_attempts = 0\n", "client.max_attempts must be >= 1"),
        ('[bus]\nsecret_key_file = "/nonexistent/client.key_secret"\n', "hpcrl keys --dir DIR"),
    ],
)
def test_an_impossible_value_is_an_error_naming_the_fix(tmp_path: Path, toml: str, fix: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, toml), env={})
    assert fix in str(error.value)


def test_hpcrl_bus_with_a_bad_config_exits_2_with_the_message_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nheartbeat_liveness = "three"\n', name="bad.toml")
    done = subprocess.run(
        [*HPCRL, "bus", "--config", str(path), "--journal", str(tmp_path / "j.sqlite")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "hpcrl bus: bus.heartbeat_liveness = 'three' must be of type int" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "j.sqlite").exists(), "nothing may start on a bad config"


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Paint:
    colour: Colour = Colour.RED


def test_enum_settings_accept_their_values_and_name_the_choices() -> None:
    assert section(Paint, {"paint": {"colour": "blue"}}, "paint", env={}).colour is Colour.BLUE
    assert section(Paint, {}, "paint", env={"HPCRL_PAINT__COLOUR": "blue"}).colour is Colour.BLUE
    with pytest.raises(ConfigError, match=r"paint\.colour = 'green' is not one of 'red', 'blue'"):
        section(Paint, {"paint": {"colour": "green"}}, "paint", env={})


def test_the_readme_configuration_example_is_valid_for_every_process(tmp_path: Path) -> None:
    """The README's TOML example stays in step with the settings: every table is read by its process's loader."""
    text = (REPO / "README.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "hpcrl.toml"
    path.write_text(example)
    data = read_toml(path)
    assert {"bus", "broker", "client", "archive", "bencher", "trainer", "policy", "grpo", "rewards"} <= set(data)
    for name, cls in (("bus", BusConfig), ("broker", BrokerConfig), ("client", ClientConfig)):
        unknown = set(data[name]) - {f.name for f in dataclasses.fields(cls)}
        assert not unknown, f"[{name}] in the README names no setting: {unknown}"
    section(ArchiveConfig, data, "archive", env={})
    section(BencherConfig, data, "bencher", env={})
    trainer = load_trainer_config(str(path), env={})
    assert trainer.loop.backend == "vllm_server" and trainer.grpo.group_size == 8 and trainer.grpo.micro_batch_size == 4

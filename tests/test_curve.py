"""Security: with CURVE the broker admits only clients whose public key is in its allowed
directory; an endpoint other hosts can reach is refused without keys; the keys come from `hpcrl keys`."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import zmq

from bus.client import BusClient
from bus.config import BusConfig, ConfigError
from bus.schema import Verdict
from tests.conftest import HPCRL, REPO, BusSite, Processes, free_port, scrape, wait_for

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq was built without CURVE")

SOURCE = "void dgemm(int n, const double *A, const double *B, double *C) { }"
DEFAULT_KEY_NAMES = ("broker", "trainer", "bencher", "archive", "client")
REFUSED = "hpcrl_bus_refused_clients_total"
SHUT_OUT_WAIT_S = 2.0
"""How long a refused client waits for a result that must never come."""


def hpcrl_keys(site: BusSite, directory: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HPCRL, "keys", "--dir", str(directory), *names],
        cwd=REPO,
        env=site.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def curve_env(
    site: BusSite, secret_key_file: Path, broker_public_key_file: Path | None = None, **more: str
) -> dict[str, str]:
    env = dict(site.env, HPCRL_BUS__SECRET_KEY_FILE=str(secret_key_file), **more)
    if broker_public_key_file is not None:
        env["HPCRL_BUS__BROKER_PUBLIC_KEY_FILE"] = str(broker_public_key_file)
    return env


def curve_client_config(site: BusSite, secret_key_file: Path, broker_public_key_file: Path) -> BusConfig:
    return dataclasses.replace(
        site.bus_config, secret_key_file=str(secret_key_file), broker_public_key_file=str(broker_public_key_file)
    )


@pytest.fixture
def keys(site: BusSite) -> Path:
    directory = site.workdir / "keys"
    done = hpcrl_keys(site, directory)
    assert done.returncode == 0, done.stderr
    return directory


# ---------------------------------------------------------------- hpcrl keys


def test_hpcrl_keys_writes_a_pair_per_name_and_an_allowed_dir_of_client_public_keys(keys: Path) -> None:
    for name in DEFAULT_KEY_NAMES:
        assert (keys / f"{name}.key").is_file()
        assert (keys / f"{name}.key_secret").is_file()
        assert (keys / f"{name}.key_secret").stat().st_mode & 0o077 == 0, "a secret key must be private"
    assert sorted(p.name for p in (keys / "allowed").iterdir()) == sorted(
        f"{name}.key" for name in DEFAULT_KEY_NAMES if name != "broker"
    )
    assert all("secret-key" not in p.read_text() for p in (keys / "allowed").iterdir())


def test_hpcrl_keys_refuses_to_overwrite_existing_keys(site: BusSite, keys: Path) -> None:
    before = {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()}
    again = hpcrl_keys(site, keys)
    assert again.returncode != 0
    assert "exists" in again.stderr and "remove it first or pick another --dir" in again.stderr
    assert "Traceback" not in again.stderr
    assert {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------- a CURVE broker


def test_an_allowed_client_and_worker_complete_a_candidate_and_strangers_get_nothing(
    site: BusSite, processes: Processes, keys: Path
) -> None:
    metrics_port = free_port()
    processes.start(
        "bus",
        "--journal",
        str(site.journal),
        "--metrics-port",
        str(metrics_port),
        env=curve_env(site, keys / "broker.key_secret", HPCRL_BROKER__ALLOWED_KEYS_DIR=str(keys / "allowed")),
    )
    processes.start(
        "test-worker",
        "--name",
        "curve-worker",
        env=curve_env(site, keys / "bencher.key_secret", keys / "broker.key"),
    )

    allowed = curve_client_config(site, keys / "client.key_secret", keys / "broker.key")
    with BusClient(allowed, site.client_config, name="allowed") as client:
        wait_for(lambda: client.pump(0.05) or client.workers_alive >= 1, 15, "the CURVE worker to connect")
        candidate = client.submit(problem="dgemm", size=64, source=SOURCE)
        result = client.wait_result(candidate.candidate_id, timeout_s=15)
    assert result is not None and result.verdict is Verdict.INFRA_ERROR
    assert result.bencher_id == "curve-worker"

    # A well-formed key pair the broker was never told about: the ZAP handler refuses it.
    strangers = site.workdir / "strangers"
    assert hpcrl_keys(site, strangers, "intruder").returncode == 0
    intruder = curve_client_config(site, strangers / "intruder.key_secret", keys / "broker.key")
    with BusClient(intruder, site.client_config, name="intruder") as client:
        candidate = client.submit(problem="dgemm", size=64, source=SOURCE)
        assert client.wait_result(candidate.candidate_id, timeout_s=SHUT_OUT_WAIT_S) is None
        assert client.workers_alive == 0, "a refused client must not even hear the broker's heartbeats"
    wait_for(lambda: scrape(metrics_port)[f'{REFUSED}{{reason="auth"}}'] >= 1, 10, "the refusal to be counted")

    # No keys at all: the CURVE handshake cannot even start.
    with BusClient(site.bus_config, site.client_config, name="plain") as client:
        candidate = client.submit(problem="dgemm", size=64, source=SOURCE)
        assert client.wait_result(candidate.candidate_id, timeout_s=SHUT_OUT_WAIT_S) is None
        assert client.workers_alive == 0

    samples = scrape(metrics_port)
    assert samples["hpcrl_bus_dispatches_total"] == 1, "only the allowed client's candidate reached a worker"
    assert samples[f'{REFUSED}{{reason="protocol"}}'] >= 1


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5555", "tcp://10.1.2.3:5555", "tcp://*:5555", "tcp://head01:5555"])
@pytest.mark.parametrize("setting", ["request_endpoint", "event_endpoint"])
def test_an_endpoint_other_hosts_can_reach_needs_curve_keys(setting: str, endpoint: str) -> None:
    with pytest.raises(ConfigError, match="hpcrl keys") as error:
        BusConfig(**{setting: endpoint})
    assert f"bus.{setting}" in str(error.value) and "bus.secret_key_file" in str(error.value)


@pytest.mark.parametrize(
    "endpoint", ["tcp://127.0.0.1:5555", "tcp://localhost:5555", "tcp://[::1]:5555", "ipc:///tmp/hpcrl.sock"]
)
def test_a_loopback_endpoint_needs_no_keys(endpoint: str) -> None:
    assert BusConfig(request_endpoint=endpoint).curve is False


def test_a_client_key_without_the_brokers_public_key_is_refused_with_the_fix(site: BusSite, keys: Path) -> None:
    config = dataclasses.replace(site.bus_config, secret_key_file=str(keys / "client.key_secret"))
    with pytest.raises(ConfigError, match=r"bus\.broker_public_key_file"):
        BusClient(config, site.client_config, name="half-configured")


def test_the_broker_with_curve_but_no_allowed_keys_dir_exits_2_naming_the_setting(site: BusSite, keys: Path) -> None:
    done = subprocess.run(
        [*HPCRL, "bus", "--journal", str(site.journal)],
        cwd=REPO,
        env=curve_env(site, keys / "broker.key_secret"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "broker.allowed_keys_dir" in done.stderr
    assert "Traceback" not in done.stderr

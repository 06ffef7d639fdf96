"""The `vllm_server` backend against a stand-in server (tests/vllm_stand_in.py: the tiny model behind vLLM's
HTTP shapes; vLLM itself never ran here): versioned adapters, behaviour log-probs equal to the trainer's own,
unloading beyond keep_adapters, bounded retries then a clear error for a server that is down, slow or
failing, and `hpcrl train` sampling from it with a real broker and bencher."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from bus.config import ConfigError
from ops.processes import free_port
from tests.conftest import BusSite, Processes
from tests.test_bencher_daemon import start_bencher
from tests.test_trainer_loop import TRAIN_SETTINGS, journaled_by_step
from tests.vllm_stand_in import SERVED_NAME, VLLMStandIn
from trainer import metrics
from trainer.adapters import AdapterStore
from trainer.config import load_trainer_config
from trainer.generation import SamplingSettings, render_prompt
from trainer.grpo import collate, token_log_probs
from trainer.policy import PolicyConfig, load_policy, reference_policy
from trainer.prompts import build_prompt, load_problem_text
from trainer.steplog import read_log
from trainer.vllm_server import VLLMServerBackend, VLLMServerConfig

FAST = VLLMServerConfig(
    url="http://unset", startup_timeout_s=5, request_timeout_s=60, retries=2, backoff_s=0.05, backoff_max_s=0.1
)
"""Test timings: seconds, not the production minutes (a request still gets a minute: the stand-in generates on
a CPU shared with the test, at tens of milliseconds per token)."""
SETTINGS = SamplingSettings(max_new_tokens=8, temperature=0.7, top_p=1.0)
"""top_p 1: the trainer's log-probs ignore top-p truncation (trainer/grpo.py), so only then must they agree."""


@pytest.fixture(scope="module")
def policy(tiny_model: Path) -> tuple[Any, Any]:
    """The tiny model with an adapter that changes its distribution (a fresh LoRA adapter is the identity)."""
    model, tokenizer = load_policy(PolicyConfig(model_dir=str(tiny_model), lora_rank=4, lora_alpha=8, device="cpu"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.05)
    return model.eval(), tokenizer


@pytest.fixture
def server(tiny_model: Path) -> Iterator[VLLMStandIn]:
    with VLLMStandIn(tiny_model) as stand_in:
        yield stand_in


def backend(server_url: str, tokenizer: Any, root: Path, **settings: Any) -> VLLMServerBackend:
    config = replace(FAST, url=server_url, **settings)
    return VLLMServerBackend(config, tokenizer, AdapterStore(root, config.keep_adapters))


def prompt(tokenizer: Any) -> str:
    return render_prompt(tokenizer, build_prompt(load_problem_text("dgemm"), None))


def test_samples_carry_the_version_that_drew_them_and_the_trainers_own_log_probs(
    server: VLLMStandIn, policy: tuple[Any, Any], tmp_path: Path
) -> None:
    model, tokenizer = policy
    sampler = backend(server.url, tokenizer, tmp_path)
    base = sampler.sample([prompt(tokenizer)], group_size=2, settings=SETTINGS)
    assert {c.policy_version for c in base} == {0} and server.asked("/v1/completions")[-1]["model"] == SERVED_NAME
    sampler.load_policy(model, 1)
    assert server.asked("/v1/load_lora_adapter") == [
        {"lora_name": "policy-v1", "lora_path": str(tmp_path / "policy-v1")}
    ]
    completions = sampler.sample([prompt(tokenizer), prompt(tokenizer) + " "], group_size=3, settings=SETTINGS)
    assert [c.group for c in completions] == [0, 0, 0, 1, 1, 1]
    assert {c.policy_version for c in completions} == {1}
    asked = server.asked("/v1/completions")[-2:]
    assert {a["model"] for a in asked} == {"policy-v1"} and {a["n"] for a in asked} == {3}
    assert len(server.asked("/v1/completions")) == 3, "no request was retried"
    assert {tuple(a["prompt"]) for a in asked} == {c.prompt_ids for c in completions}
    # The behaviour log-probs are what the update computes for the same tokens with the same adapter.
    batch = collate(
        [c.prompt_ids for c in completions],
        [c.completion_ids for c in completions],
        [c.behaviour_logprobs for c in completions],
        [1.0] * len(completions),
        int(tokenizer.pad_token_id),
    )
    mask = batch.completion_mask.bool()
    with torch.no_grad():
        trainer_logp = token_log_probs(model, batch.input_ids, batch.attention_mask, batch.completion_mask, 0.7)
        with reference_policy(model):
            base_logp = token_log_probs(model, batch.input_ids, batch.attention_mask, batch.completion_mask, 0.7)
    torch.testing.assert_close(batch.old_logp[mask], trainer_logp[mask], atol=1e-4, rtol=1e-4)
    assert (batch.old_logp[mask] - base_logp[mask]).abs().max() > 1e-2, "the server sampled the base model"
    assert all(c.text == tokenizer.decode(c.completion_ids, skip_special_tokens=True) for c in completions)


def test_adapters_beyond_keep_adapters_are_unloaded_and_deleted(
    server: VLLMStandIn, policy: tuple[Any, Any], tmp_path: Path
) -> None:
    model, tokenizer = policy
    sampler = backend(server.url, tokenizer, tmp_path, keep_adapters=2)
    for version in range(1, 5):
        sampler.load_policy(model, version)
    assert sorted(server.adapters) == ["policy-v3", "policy-v4"]
    assert [a["lora_name"] for a in server.asked("/v1/unload_lora_adapter")] == ["policy-v1", "policy-v2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy-v3", "policy-v4"]
    assert (tmp_path / "policy-v4" / "adapter_config.json").is_file()


def test_a_new_trainer_unloads_the_adapters_an_earlier_one_left_on_the_server(
    server: VLLMStandIn, policy: tuple[Any, Any], tmp_path: Path
) -> None:
    """A restarted trainer writes `policy-v<N>` anew: the server must not keep serving the old weights."""
    model, tokenizer = policy
    backend(server.url, tokenizer, tmp_path).load_policy(model, 5)
    assert list(server.adapters) == ["policy-v5"]
    resumed = backend(server.url, tokenizer, tmp_path)
    assert server.adapters == {}
    resumed.load_policy(model, 5)
    assert list(server.adapters) == ["policy-v5"] and resumed.served == "policy-v5"


def test_a_failing_server_is_retried_with_backoff_and_the_samples_come(
    server: VLLMStandIn, policy: tuple[Any, Any], tmp_path: Path
) -> None:
    _, tokenizer = policy
    sampler = backend(server.url, tokenizer, tmp_path)
    retries_before = metrics.VLLM_SERVER_RETRIES._value.get()
    server.fail_next("error", 2, "/v1/completions")
    completions = sampler.sample([prompt(tokenizer)], group_size=2, settings=SETTINGS)
    assert len(completions) == 2
    assert len(server.asked("/v1/completions")) == 3
    assert metrics.VLLM_SERVER_RETRIES._value.get() - retries_before == 2


def test_a_retried_adapter_load_the_server_had_done_counts_as_loaded(
    server: VLLMStandIn, policy: tuple[Any, Any], tmp_path: Path
) -> None:
    """A load that timed out on the client may have happened on the server: its retry is told 'already loaded'."""
    model, tokenizer = policy
    server.slow_s = 0.6
    sampler = backend(server.url, tokenizer, tmp_path, request_timeout_s=0.3)
    server.fail_next("slow", 1, "/v1/load_lora_adapter")
    sampler.load_policy(model, 1)
    assert len(server.asked("/v1/load_lora_adapter")) == 2 and list(server.adapters) == ["policy-v1"]
    assert sampler.served == "policy-v1"


def test_a_server_that_is_down_fails_naming_the_url_and_the_fix_within_the_startup_bound(
    policy: tuple[Any, Any], tmp_path: Path
) -> None:
    _, tokenizer = policy
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens: connection refused
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"did not come up .*{url}/health.*startup_timeout_s"):
        backend(url, tokenizer, tmp_path, startup_timeout_s=0.5)
    assert time.monotonic() - started < 3


def test_the_trainer_waits_for_the_url_the_server_job_writes(
    server: VLLMStandIn, policy: tuple[Any, Any], tmp_path: Path
) -> None:
    _, tokenizer = policy
    url_file = tmp_path / "server-url"
    url_file.write_text(server.url + "\n")
    config = replace(FAST, url="", url_file=str(url_file))
    sampler = VLLMServerBackend(config, tokenizer, AdapterStore(tmp_path / "adapters", 2))
    assert sampler.url == server.url and sampler.base_model == SERVED_NAME
    with pytest.raises(RuntimeError, match=r"no URL in .*missing.*startup_timeout_s"):
        VLLMServerBackend(
            replace(config, url_file=str(tmp_path / "missing"), startup_timeout_s=0.2),
            tokenizer,
            AdapterStore(tmp_path / "adapters", 2),
        )


def test_a_slow_server_times_out_each_attempt_and_the_trainer_stops_in_bounded_time(
    server: VLLMStandIn, policy: tuple[Any, Any], tmp_path: Path
) -> None:
    _, tokenizer = policy
    sampler = backend(server.url, tokenizer, tmp_path, request_timeout_s=0.3, retries=1)
    server.fail_next("slow", 2, "/v1/completions")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"{server.url} failed /v1/completions 2 times.*request_timeout_s"):
        sampler.sample([prompt(tokenizer)], group_size=2, settings=SETTINGS)
    # Two attempts of 0.3 s and one backoff of 0.05 s, plus slack for a loaded machine.
    assert time.monotonic() - started < 2.5


def test_a_server_without_runtime_lora_loading_is_refused_at_once_with_the_fix(
    tiny_model: Path, policy: tuple[Any, Any], tmp_path: Path
) -> None:
    model, tokenizer = policy
    with VLLMStandIn(tiny_model, runtime_lora=False) as server:
        sampler = backend(server.url, tokenizer, tmp_path)
        with pytest.raises(RuntimeError, match=r"HTTP 404.*VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
            sampler.load_policy(model, 1)
        assert len(server.asked("/v1/load_lora_adapter")) == 1, "a 404 is not worth a retry"


def test_the_vllm_server_backend_needs_the_servers_address(tmp_path: Path) -> None:
    path = tmp_path / "hpcrl.toml"
    path.write_text('[trainer]\nbackend = "vllm_server"\n')
    with pytest.raises(ConfigError, match=r"vllm_server\.url, or vllm_server\.url_file"):
        load_trainer_config(str(path), env={})
    config = load_trainer_config(str(path), env={"HPCRL_VLLM_SERVER__URL": "http://gpu07:8000"})
    assert config.vllm_server.url == "http://gpu07:8000" and config.resolved()["vllm_server"]["keep_adapters"] == 2
    with pytest.raises(ConfigError, match=r"vllm_server\.url = 'gpu07:8000': give a URL such as 'http://"):
        load_trainer_config(str(path), env={"HPCRL_VLLM_SERVER__URL": "gpu07:8000"})


def test_hpcrl_train_samples_each_batch_from_the_adapter_version_before_it_within_the_staleness_bound(
    site: BusSite, processes: Processes, tiny_model: Path
) -> None:
    processes.broker()
    start_bencher(processes, "b1", result_cache="true")
    run_dir = site.workdir / "run"
    with VLLMStandIn(tiny_model) as server:
        env = {**site.env, **TRAIN_SETTINGS, "HPCRL_TRAINER__ARCHIVE_WAIT_S": "0"}
        env |= {"HPCRL_TRAINER__BACKEND": "vllm_server", "HPCRL_VLLM_SERVER__URL": server.url}
        trainer = processes.start(
            "train", "--model", str(tiny_model), "--run-dir", str(run_dir), "--steps", "3", env=env
        )
        assert trainer.wait(300) == 0
    records = read_log(run_dir)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(r["staleness"] <= 1 for r in records), [r["staleness"] for r in records]
    versions = [r["policy_version"] for r in records]
    # Generated one step ahead (max_staleness 1): steps 1 and 2 from the base model, step 3 from the adapter
    # of update 1. Every new version reached the server as policy-v<N>, once (an empty update keeps its version).
    names = [a["model"] for a in server.asked("/v1/completions")]
    assert names == [SERVED_NAME, SERVED_NAME, f"policy-v{versions[0]}" if versions[0] else SERVED_NAME], names
    loads = [a["lora_name"] for a in server.asked("/v1/load_lora_adapter")]
    assert loads == [f"policy-v{v}" for v in sorted(set(versions) - {0})], (loads, versions)
    kept = {f"policy-v{v}" for v in set(versions) - {0} if v > versions[-1] - 2}  # keep_adapters = 2
    assert {p.name for p in (run_dir / "adapters").glob("*")} == kept
    # Each candidate carries the version that drew it.
    by_step = journaled_by_step(site, "policy_version")
    assert by_step.get(1, {0}) == {0} and by_step.get(3, {versions[0]}) == {versions[0]}, by_step

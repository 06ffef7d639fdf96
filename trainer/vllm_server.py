"""The `vllm_server` generation backend: a vLLM server on GPUs of its own, spoken to over HTTP.

The server (`vllm serve BASE --enable-lora`, with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; ops/slurm/
vllm-server.sbatch) serves the base model and whichever adapters it is told to load. After each update
the trainer writes the adapter to `<adapter_dir>/policy-v<N>` on shared storage (trainer/adapters.py),
has the server load it (POST /v1/load_lora_adapter), and unloads the versions it no longer needs (POST
/v1/unload_lora_adapter) so the server's LoRA slots and the disk do not fill. Samples come from POST
/v1/completions, one request per prompt asking for `group_size` samples, several requests in flight:

    {"model": "policy-v<N>" (or the base model's name for version 0), "prompt": [token ids], "n": G,
     "max_tokens", "temperature", "top_p", "top_k": -1, "min_p": 0, "repetition_penalty": 1,
     "presence_penalty": 0, "frequency_penalty": 0, "logprobs": 0, "return_tokens_as_token_ids": true}

The prompt goes as token ids, so the prompt the update trains on is exactly the one sampled from; the
sampled ids come back in `choices[i].logprobs.tokens` as "token_id:<id>", their log-probs in
`token_logprobs`. Every sampling setting is sent, so the model's generation_config.json (which vLLM
applies to settings a request leaves out, e.g. Qwen's top_k = 20) cannot change the distribution. The
log-probs are those of the sampling distribution only when the server runs with `--logprobs-mode
processed_logprobs` (vLLM >= 0.10.2; the sbatch script sets it).

Each completion records the adapter version it was asked of, and the server's answer must name that
adapter (`model`), so a sample never carries a version that did not produce it. A server that is down,
slow or failing gets `retries` more attempts with capped exponential backoff, then the trainer stops with
an error naming the server and the fix: bounded, never a hang.

Written against vLLM's OpenAI-compatible server (vllm/entrypoints/openai); tested against a stand-in
(tests/vllm_stand_in.py), never against vLLM itself (docs/trainer.md).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any, Final

from trainer import metrics
from trainer.adapters import AdapterStore, adapter_name, version_of
from trainer.generation import Completion, SamplingSettings

log = logging.getLogger(__name__)

HEALTH_POLL_INTERVAL_S: Final = 2.0
"""How often the trainer looks for the url file and a healthy server while the server starts."""
HEALTH_TIMEOUT_S: Final = 10.0
"""Bound on one /health request while waiting for the server (a loading server may not answer yet)."""
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt: the server is busy, restarting or behind a proxy that gave up.
Any other 4xx means the request itself is wrong, which a retry cannot fix."""
TOKEN_ID_PREFIX: Final = "token_id:"
"""How vLLM writes a token in `logprobs.tokens` when asked for `return_tokens_as_token_ids`."""


@dataclass(frozen=True)
class VLLMServerConfig:
    """`[vllm_server]`: the vLLM server the `vllm_server` backend samples from (docs/trainer.md)."""

    url: str = ""
    """The server's base URL, e.g. `http://gpu07:8000`; empty: read it from url_file."""
    url_file: str = ""
    """A file on shared storage holding the server's URL, written by ops/slurm/vllm-server.sbatch when the
    server starts and removed when it ends; the trainer waits for it and for /health (startup_timeout_s).
    Used when url is empty."""
    adapter_dir: str = ""
    """Directory the trainer writes each version's adapter to (`policy-v<N>`) and the server loads it from:
    the same path on both nodes (shared storage). Empty: `<trainer.run_dir>/adapters`."""
    startup_timeout_s: float = 1800.0
    """How long the trainer waits at start for the url file and a healthy server (a large model takes
    minutes to load and compile)."""
    request_timeout_s: float = 600.0
    """Bound on each socket operation of one request: a completion request answers only once all
    group_size samples of its prompt are done."""
    retries: int = 3
    """Further attempts after a request fails (connection refused, timeout, HTTP 408/429/5xx); then the
    trainer stops with an error."""
    backoff_s: float = 2.0
    """Wait before the first retry, doubled before each further one, up to backoff_max_s."""
    backoff_max_s: float = 30.0
    """Cap on the wait between retries."""
    parallel_requests: int = 8
    """Completion requests in flight at once (one per prompt); the server batches them."""
    keep_adapters: int = 2
    """Adapter versions kept loaded on the server and on disk, the newest; older ones are unloaded and
    deleted so the server's LoRA slots and the shared disk do not fill."""

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"vllm_server.url = {self.url!r}: give a URL such as 'http://gpu07:8000'")
        if self.startup_timeout_s <= 0 or self.request_timeout_s <= 0:
            raise ValueError("vllm_server.startup_timeout_s and request_timeout_s must be > 0 seconds")
        if self.retries < 0 or self.backoff_s < 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError("vllm_server: retries >= 0 and 0 <= backoff_s <= backoff_max_s please")
        if self.parallel_requests < 1 or self.keep_adapters < 1:
            raise ValueError(
                "vllm_server.parallel_requests and keep_adapters must be >= 1 (keep_adapters counts the one served)"
            )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (0-based): capped exponential."""
        return float(min(self.backoff_s * 2**attempt, self.backoff_max_s))


class _Refused(Exception):
    """The server answered with a status a retry cannot change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class VLLMServerBackend:
    """Samples from a vLLM server; the trainer's adapter reaches it through shared storage, by version."""

    name = "vllm_server"

    def __init__(self, config: VLLMServerConfig, tokenizer: Any, adapters: AdapterStore) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.adapters = adapters
        self.url = self._await_server()
        self.base_model = self._take_over()
        self.served = self.base_model
        """The model name completions ask for: the base model (version 0) or `policy-v<N>`."""
        self.loaded: list[int] = []
        """Adapter versions this trainer has loaded on the server, oldest first."""
        self.version = 0

    # ------------------------------------------------------------ the Backend interface

    def load_policy(self, model: Any, version: int) -> None:
        if version == self.version:
            return  # an update that changed nothing (every advantage zero) keeps its version and its weights
        if version > 0:
            path = self.adapters.save(model, version)
            self._post("/v1/load_lora_adapter", {"lora_name": adapter_name(version), "lora_path": str(path)})
            self.loaded.append(version)
            log.info("event=adapter_loaded version=%d path=%s", version, path)
        for old in [v for v in self.loaded if v <= version - self.config.keep_adapters]:
            self._post("/v1/unload_lora_adapter", {"lora_name": adapter_name(old)})
            self.loaded.remove(old)
        self.adapters.prune(version)
        self.served = adapter_name(version) if version > 0 else self.base_model
        self.version = version

    def sample(self, prompts: Sequence[str], group_size: int, settings: SamplingSettings) -> list[Completion]:
        version, served = self.version, self.served
        prompt_ids = [tuple(self.tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]
        request = {
            "model": served,
            "n": group_size,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "top_k": -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "logprobs": 0,  # the sampled token's own log-prob, no alternatives
            "return_tokens_as_token_ids": True,
        }

        def complete(ids: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
            return _samples(self._post("/v1/completions", {**request, "prompt": list(ids)}), served, group_size)

        with ThreadPoolExecutor(max_workers=min(self.config.parallel_requests, len(prompt_ids))) as pool:
            answers = list(pool.map(complete, prompt_ids))
        completions = []
        for group, (prompt, samples) in enumerate(zip(prompt_ids, answers, strict=True)):
            for ids, logprobs in samples:
                # Decoded here, not taken from the server's text: the code benchmarked is exactly the tokens trained on.
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                completions.append(Completion(group, text, prompt, ids, logprobs, version))
        return completions

    # ------------------------------------------------------------ start-up

    def _await_server(self) -> str:
        """The server's URL once it answers /health, waiting up to startup_timeout_s for its start."""
        deadline = time.monotonic() + self.config.startup_timeout_s
        while True:
            # Read again at each try: a file left by an earlier server names a dead one until the new job writes it.
            url = self.config.url or _read_url(Path(self.config.url_file))
            problem = f"no URL in {self.config.url_file} yet"
            if url:
                try:
                    _call(f"{url}/health", None, min(HEALTH_TIMEOUT_S, self.config.request_timeout_s))
                    log.info("event=vllm_server_ready url=%s", url)
                    return url
                except (_Refused, OSError, HTTPException) as error:
                    problem = f"{url}/health: {error}"
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"the vLLM server did not come up within vllm_server.startup_timeout_s = "
                    f"{self.config.startup_timeout_s} s ({problem}): check the server job and its log "
                    "(ops/slurm/vllm-server.sbatch), vllm_server.url or url_file, or raise startup_timeout_s"
                )
            time.sleep(min(HEALTH_POLL_INTERVAL_S, left))

    def _take_over(self) -> str:
        """The base model's served name; adapters of an earlier trainer are unloaded (after a restart, the
        server may hold a `policy-v<N>` whose weights this run is about to write anew)."""
        models = self._get("/v1/models")["data"]
        base = [m["id"] for m in models if m.get("parent") is None]
        if not base:
            raise RuntimeError(f"the vLLM server at {self.url} lists no base model in /v1/models: {models}")
        for model in models:
            if model.get("parent") is not None and version_of(model["id"]) is not None:
                self._post("/v1/unload_lora_adapter", {"lora_name": model["id"]})
        return str(base[0])

    # ------------------------------------------------------------ HTTP with bounded retries

    def _get(self, path: str) -> Any:
        return self._request(path, None)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request(path, body)

    def _request(self, path: str, body: dict[str, Any] | None) -> Any:
        """The JSON (or text) answer of one request, after up to `retries` further attempts."""
        attempts = self.config.retries + 1
        started = time.monotonic()
        for attempt in range(attempts):
            try:
                return _call(f"{self.url}{path}", body, self.config.request_timeout_s)
            except _Refused as refused:
                if refused.status not in RETRY_STATUSES:
                    return self._refused(path, body, refused)
                error: Exception = refused
            except (OSError, HTTPException) as failure:  # refused connection, timeout, reset, bad status line
                error = failure
            if attempt + 1 < attempts:
                wait = self.config.backoff(attempt)
                metrics.VLLM_SERVER_RETRIES.inc()
                log.warning(
                    "event=vllm_server_retry path=%s attempt=%d error=%r wait_s=%.1f", path, attempt + 1, error, wait
                )
                time.sleep(wait)
        raise RuntimeError(
            f"the vLLM server at {self.url} failed {path} {attempts} times in {time.monotonic() - started:.1f} s "
            f"(last: {error}): check that the server job runs and answers `curl {self.url}/health` (its log says "
            "why not); if it is only slow, raise vllm_server.request_timeout_s or vllm_server.retries"
        )

    def _refused(self, path: str, body: dict[str, Any] | None, refused: _Refused) -> Any:
        """A refusal that is an answer (a retried load the server had done, an unload of what is gone), or
        the error that names the fix."""
        if path == "/v1/load_lora_adapter" and refused.status == 400 and "already been loaded" in refused.message:
            return refused.message  # our own earlier attempt got through before it timed out
        if (
            path == "/v1/unload_lora_adapter"
            and refused.status == 404
            and body
            and body["lora_name"] in refused.message
        ):
            return refused.message
        hint = {
            "/v1/load_lora_adapter": "start the server with --enable-lora, --max-lora-rank >= policy.lora_rank and "
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, and put vllm_server.adapter_dir where the server reads it",
            "/v1/unload_lora_adapter": "start the server with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
        }.get(path, "check that the server serves policy.model_dir and speaks vLLM's OpenAI API")
        raise RuntimeError(f"the vLLM server at {self.url} refused {path} with {refused}: {hint}")


_DIRECT: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""An opener that ignores http_proxy: the server is on the cluster's own network, and a site proxy in the
environment would otherwise carry (or refuse) every request."""


def _call(url: str, body: dict[str, Any] | None, timeout_s: float) -> Any:
    """One HTTP request: GET without a body, POST with a JSON one; the answer as JSON, or as text when it
    is not JSON (vLLM answers adapter loads with a sentence). Raises _Refused on an HTTP error status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with _DIRECT.open(request, timeout=timeout_s) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        raise _Refused(error.code, _error_message(error.read().decode(errors="replace"))) from None
    except urllib.error.URLError as error:  # the reason (connection refused, a timeout) is what matters
        reason = error.reason
        raise reason if isinstance(reason, OSError) else OSError(str(reason)) from None
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return text


def _error_message(text: str) -> str:
    """The message of a vLLM error body ({"error": {"message"}} or the older {"message"}), else the text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    if isinstance(data, dict):
        inner = data.get("error")
        message = inner.get("message") if isinstance(inner, dict) else data.get("message", data.get("detail"))
        if message:
            return str(message)
    return text.strip()


def _read_url(path: Path) -> str:
    """The URL a server job wrote, or '' while there is none (the job has not started listening)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _samples(response: Any, served: str, n: int) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
    """(token ids, their log-probs) of each choice of a /v1/completions answer, checked against the request."""
    if response.get("model") != served:
        raise RuntimeError(
            f"the vLLM server answered a request for {served!r} as {response.get('model')!r}: its samples would "
            "carry the wrong policy version; is another trainer loading adapters into the same server?"
        )
    choices = sorted(response["choices"], key=lambda c: int(c["index"]))
    if len(choices) != n:
        raise RuntimeError(f"the vLLM server returned {len(choices)} choices for n = {n}")
    samples = []
    for choice in choices:
        logprobs = choice.get("logprobs") or {}
        tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
        if tokens is None or values is None or len(tokens) != len(values) or None in values:
            raise RuntimeError(
                f"the vLLM server returned no log-prob for some sampled tokens ({choice.get('logprobs')!r}): "
                "the importance ratio needs one per token; is it an OpenAI-compatible vLLM server?"
            )
        samples.append((tuple(_token_id(t) for t in tokens), tuple(float(v) for v in values)))
    return samples


def _token_id(token: str) -> int:
    if not token.startswith(TOKEN_ID_PREFIX):
        raise RuntimeError(
            f"the vLLM server wrote a sampled token as {token!r}, not 'token_id:<id>': it ignored "
            "return_tokens_as_token_ids; is it an OpenAI-compatible vLLM server?"
        )
    return int(token[len(TOKEN_ID_PREFIX) :])

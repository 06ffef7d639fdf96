"""A stand-in for vLLM's OpenAI-compatible server, for tests: a real HTTP server on 127.0.0.1 (a free port)
backed by a small Hugging Face model (transformers `generate` + peft adapters), with exactly the endpoints
the `vllm_server` backend uses and vLLM's request and response shapes:

  GET  /health                   200, empty body
  GET  /v1/models                {"object": "list", "data": [{"id", "object": "model", "root", "parent"}]}:
                                 the base model (parent null), then each loaded adapter (parent: the base)
  POST /v1/load_lora_adapter     {"lora_name", "lora_path"} -> 200 "Success: ..."; 400 when the name is
                                 loaded already; 404 when the path holds no adapter
  POST /v1/unload_lora_adapter   {"lora_name"} -> 200 "Success: ..."; 404 when it is not loaded
  POST /v1/completions           a prompt of token ids, n, max_tokens, temperature, top_p, logprobs: 0,
                                 return_tokens_as_token_ids -> choices[i].logprobs.tokens ("token_id:<id>")
                                 and token_logprobs: the log-probs of the distribution that drew each token
                                 (after temperature and top-p, as vLLM's --logprobs-mode processed_logprobs)

Errors have vLLM's body, {"error": {"message", "type", "param", "code"}}. `fail_next` makes it play a
server that is slow (it sleeps before answering) or failing (HTTP 503); a server that is down is a port
nobody listens on. Everything it was asked is kept in `requests`. It is not vLLM: no batching, one
request generates at a time.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

SERVED_NAME = "stand-in-base"
"""The base model's name in /v1/models (vLLM's default is the path it was started with)."""


@dataclass
class Fault:
    how: str
    """`slow` (sleep `slow_s`, then answer) or `error` (HTTP 503)."""
    count: int
    """Requests still to answer this way."""
    path: str | None
    """Only requests to this path; None: any but /health."""


class _Server(ThreadingHTTPServer):
    # Handler threads are joined at close, so a test ends with none of them left (a slow answer included).
    daemon_threads = False


class VLLMStandIn:
    """Start with `with VLLMStandIn(model_dir) as server:`; `server.url` is its base URL."""

    def __init__(self, model_dir: Path, runtime_lora: bool = True, slow_s: float = 1.0) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.model: Any = self.base
        self.model_dir = model_dir
        self.runtime_lora = runtime_lora
        """False: a server started without VLLM_ALLOW_RUNTIME_LORA_UPDATING (the adapter routes are absent)."""
        self.slow_s = slow_s
        self.adapters: dict[str, str] = {}
        """Loaded adapter name -> its path."""
        self.requests: list[tuple[str, Any]] = []
        """(path, JSON body or None) of every request, in arrival order."""
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> VLLMStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def fail_next(self, how: str, count: int, path: str | None = None) -> None:
        self.faults.append(Fault(how, count, path))

    def asked(self, path: str) -> list[Any]:
        """The bodies of the requests to `path`."""
        return [body for p, body in self.requests if p == path]

    # ------------------------------------------------------------ the endpoints

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((path, body))
        if path != "/health":
            fault = next((f for f in self.faults if f.count > 0 and f.path in (None, path)), None)
            if fault is not None:
                fault.count -= 1
                if fault.how == "slow":
                    time.sleep(self.slow_s)
                else:
                    return _error(503, "the stand-in plays a failing server", "ServiceUnavailableError")
        routes = {
            ("GET", "/health"): lambda: (200, ""),
            ("GET", "/v1/models"): self.models,
            ("POST", "/v1/completions"): lambda: self.complete(body),
        }
        if self.runtime_lora:
            routes[("POST", "/v1/load_lora_adapter")] = lambda: self.load(body)
            routes[("POST", "/v1/unload_lora_adapter")] = lambda: self.unload(body)
        route = routes.get((method, path))
        if route is None:
            return 404, {"detail": "Not Found"}  # FastAPI's answer for a route the server does not have
        with self.lock:
            return route()

    def models(self) -> tuple[int, Any]:
        cards = [{"id": SERVED_NAME, "object": "model", "root": str(self.model_dir), "parent": None}]
        cards += [{"id": n, "object": "model", "root": p, "parent": SERVED_NAME} for n, p in self.adapters.items()]
        return 200, {"object": "list", "data": cards}

    def load(self, body: dict[str, Any]) -> tuple[int, Any]:
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
        if name in self.adapters:
            return _error(400, f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput")
        if not (Path(path) / "adapter_config.json").is_file():
            return _error(404, f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError")
        if self.model is self.base:
            self.model = PeftModel.from_pretrained(self.base, path, adapter_name=name).eval()
        else:
            self.model.load_adapter(path, adapter_name=name)
        self.adapters[name] = path
        return 200, f"Success: LoRA adapter '{name}' added successfully."

    def unload(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("lora_name")
        if name not in self.adapters:
            return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        self.model.delete_adapter(name)
        del self.adapters[name]
        return 200, f"Success: LoRA adapter '{name}' removed successfully."

    @torch.no_grad()
    def complete(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("model")
        if name != SERVED_NAME and name not in self.adapters:
            return _error(404, f"The model `{name}` does not exist.", "NotFoundError")
        prompt = body["prompt"]
        if not (isinstance(prompt, list) and all(isinstance(t, int) for t in prompt)):
            return _error(400, "the stand-in takes prompts as token ids only", "BadRequestError")
        with self._policy(name):
            output = self.model.generate(
                input_ids=torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                do_sample=True,
                temperature=float(body["temperature"]),
                top_p=float(body["top_p"]),
                top_k=0,
                max_new_tokens=int(body["max_tokens"]),
                num_return_sequences=int(body["n"]),
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
            # (n, T_new): log-prob of each sampled token under the processed distribution that drew it.
            scores = self.model.compute_transition_scores(output.sequences, output.scores, normalize_logits=True)
        choices = []
        for index, row in enumerate(output.sequences[:, len(prompt) :].tolist()):
            # A finished row is padded after its EOS; the EOS is part of the sample, as in vLLM.
            stop = row.index(self.tokenizer.eos_token_id) + 1 if self.tokenizer.eos_token_id in row else len(row)
            ids, logprobs = row[:stop], scores[index, :stop].tolist()
            choices.append(
                {
                    "index": index,
                    "text": self.tokenizer.decode(ids, skip_special_tokens=True),
                    "logprobs": {
                        "text_offset": list(range(len(ids))),
                        "token_logprobs": logprobs,
                        "tokens": [f"token_id:{t}" for t in ids],
                        "top_logprobs": [{f"token_id:{t}": lp} for t, lp in zip(ids, logprobs, strict=True)],
                    },
                    "finish_reason": "stop" if self.tokenizer.eos_token_id in ids else "length",
                    "stop_reason": None,
                }
            )
        generated = sum(len(c["logprobs"]["tokens"]) for c in choices)
        usage = {"prompt_tokens": len(prompt), "completion_tokens": generated, "total_tokens": len(prompt) + generated}
        created = int(time.time())
        return 200, {"id": f"cmpl-{created}", "object": "text_completion", "created": created, "model": name,
                     "choices": choices, "usage": usage}  # fmt: skip

    @contextlib.contextmanager
    def _policy(self, name: str) -> Iterator[None]:
        """The base model, or the named adapter switched on."""
        if name == SERVED_NAME:
            with self.model.disable_adapter() if self.model is not self.base else contextlib.nullcontext():
                yield
        else:
            self.model.set_adapter(name)
            yield


def _error(status: int, message: str, kind: str) -> tuple[int, Any]:
    return status, {"error": {"message": message, "type": kind, "param": None, "code": status}}


def _handler(stand_in: VLLMStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._reply(*stand_in.answer("GET", self.path, None))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            self._reply(*stand_in.answer("POST", self.path, body))

        def _reply(self, status: int, answer: Any) -> None:
            text = answer if isinstance(answer, str) else json.dumps(answer)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
                self.send_header("Content-Length", str(len(text.encode())))
                self.end_headers()
                self.wfile.write(text.encode())

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read `requests`, not a log on stderr."""

    return Handler

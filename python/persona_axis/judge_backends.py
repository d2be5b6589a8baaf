"""Judge backends: an OpenAI-compatible chat endpoint over HTTP (stdlib only), and a local model.

Both take ``(key, prompt)`` items and yield ``(key, JudgeReply)`` as replies arrive. A reply that
could not be obtained (retries exhausted) has ``raw=None`` and ``error`` set; it is stored as a
missing score and retried on the next run. Errors that retrying cannot fix (401, 404, ...) raise
``JudgeFatalError`` and stop the run.
"""
from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Iterable, Iterator

RETRYABLE_STATUS = {408, 409, 429}


class JudgeFatalError(RuntimeError):
    """An error no retry can fix (bad URL, key or model): the run stops."""


@dataclass(frozen=True)
class JudgeReply:
    raw: str | None
    error: str | None = None
    attempts: int = 1


def retry_after_seconds(headers: Any) -> float | None:
    """OpenAI's ``retry-after-ms``, else ``Retry-After`` as seconds or an HTTP date."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("Retry-After")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(ra).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAIJudge:
    """``POST {base_url}/chat/completions`` at ``temperature`` (default 0), a bounded pool of worker threads,
    and retries with exponential backoff + jitter on connection errors, timeouts, 5xx and 429
    (honouring Retry-After)."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None, *, concurrency: int = 16,
                 max_retries: int = 6, timeout: float = 60.0, max_tokens: int = 8, backoff_base: float = 1.0,
                 max_backoff: float = 60.0, temperature: float = 0.0):
        self.temperature = temperature
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.max_retries = max(0, max_retries)
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.backoff_base = backoff_base
        self.max_backoff = max_backoff
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.retries = 0  # total retries made (for the log)

    def _backoff(self, attempt: int) -> float:
        with self._lock:
            jitter = 0.5 + self._rng.random()
        return min(self.max_backoff, self.backoff_base * (2 ** attempt)) * jitter

    def _post(self, prompt: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            payload = json.loads(resp.read().decode("utf-8"))
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"reply without choices[0].message.content: {json.dumps(payload)[:200]}") from None
        return content if isinstance(content, str) else ""

    def complete(self, prompt: str) -> JudgeReply:
        last = ""
        for attempt in range(self.max_retries + 1):
            delay: float | None = None
            try:
                return JudgeReply(self._post(prompt), None, attempt + 1)
            except urllib.error.HTTPError as e:
                detail = ""
                try:
                    detail = e.read().decode("utf-8", "replace")[:300]
                except Exception:
                    pass
                if e.code not in RETRYABLE_STATUS and e.code < 500:
                    raise JudgeFatalError(
                        f"HTTP {e.code} from {self.url}: {detail or e.reason}; check --base-url, --judge-model "
                        "and the API key (--api-key-env)"
                    ) from None
                last = f"HTTP {e.code}: {detail or e.reason}"
                delay = retry_after_seconds(e.headers)
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError,
                    http.client.HTTPException, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                last = f"{type(e).__name__}: {reason}"
            if attempt == self.max_retries:
                break
            with self._lock:
                self.retries += 1
            time.sleep(delay if delay is not None else self._backoff(attempt))
        return JudgeReply(None, f"gave up after {self.max_retries + 1} attempts; last error: {last}",
                          self.max_retries + 1)

    def judge_many(self, items: Iterable[tuple[Any, str]]) -> Iterator[tuple[Any, JudgeReply]]:
        """Replies as they complete; at most ``2 * concurrency`` requests queued at a time."""
        it = iter(items)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="judge") as pool:
            pending: dict = {}

            def fill() -> None:
                while len(pending) < 2 * self.concurrency:
                    try:
                        key, prompt = next(it)
                    except StopIteration:
                        return
                    pending[pool.submit(self.complete, prompt)] = key

            fill()
            try:
                while pending:
                    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    for fut in done:
                        key = pending.pop(fut)
                        yield key, fut.result()
                    fill()
            finally:
                for fut in pending:
                    fut.cancel()


class LocalJudge:
    """A local model judging in-process: vLLM when installed and a GPU is present (or ``engine``
    says so), else transformers. Greedy decoding of a few tokens (sampling when ``temperature`` > 0), the eval prompt as the user turn
    (no system turn), batches with left padding."""

    name = "local"

    def __init__(self, model_name: str, *, revision: str | None = None, engine: str = "auto", device: str = "auto",
                 dtype: str = "auto", batch_size: int = 8, max_tokens: int = 8, tensor_parallel_size: int = 1,
                 temperature: float = 0.0):
        from .generation_backends import resolve_device, resolve_dtype, vllm_importable
        from .model_loading import hub_revision, load_causal_lm, load_tokenizer, require_cached

        self.batch_size = max(1, batch_size)
        self.max_tokens = max_tokens
        self.temperature = temperature
        if engine == "auto":
            import torch

            engine = "vllm" if vllm_importable() and torch.cuda.is_available() else "hf"
        self.engine = engine
        rev = hub_revision(model_name, revision)
        if engine == "vllm":
            from vllm import LLM, SamplingParams

            kw: dict[str, Any] = dict(model=model_name, dtype=resolve_dtype(dtype, "cuda"),
                                      tensor_parallel_size=tensor_parallel_size)
            if rev:
                kw["revision"] = rev
            require_cached(model_name, revision)
            self.llm = LLM(**kw)
            self.sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens)
            self.tokenizer = self.llm.get_tokenizer()
            return
        import torch

        self.device = resolve_device(device)
        self.tokenizer = load_tokenizer(model_name, revision)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = load_causal_lm(
            model_name, revision, dtype=getattr(torch, resolve_dtype(dtype, self.device))).to(self.device).eval()

    def _prompt_ids(self, prompt: str) -> list[int]:
        from .prompts import ensure_chat_template, prompt_token_ids, render_prompt

        ensure_chat_template(self.tokenizer, source="of the local judge model")
        return prompt_token_ids(self.tokenizer, render_prompt(self.tokenizer, "", prompt))

    def _generate(self, prompts: list[str]) -> list[str]:
        ids = [self._prompt_ids(p) for p in prompts]
        if self.engine == "vllm":
            outs = self.llm.generate([{"prompt_token_ids": x} for x in ids], self.sampling, use_tqdm=False)
            return [o.outputs[0].text for o in outs]
        import torch

        enc = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            sample = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
            out = self.model.generate(**enc, **sample, max_new_tokens=self.max_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        return [self.tokenizer.decode(row, skip_special_tokens=True) for row in new]

    def judge_many(self, items: Iterable[tuple[Any, str]]) -> Iterator[tuple[Any, JudgeReply]]:
        batch: list[tuple[Any, str]] = []
        for item in items:
            batch.append(item)
            if len(batch) >= self.batch_size:
                yield from zip([k for k, _ in batch], (JudgeReply(t) for t in self._generate([p for _, p in batch])))
                batch = []
        if batch:
            yield from zip([k for k, _ in batch], (JudgeReply(t) for t in self._generate([p for _, p in batch])))

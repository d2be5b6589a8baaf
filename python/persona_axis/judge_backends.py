"""Judge backends: an OpenAI-compatible chat endpoint (the ``openai`` SDK), and a local model.

Both take ``(key, prompt)`` items and yield ``(key, JudgeReply)`` as replies arrive. A reply that
could not be obtained (retries exhausted) has ``raw=None`` and ``error`` set; it is stored as a
missing score and retried on the next run. Errors that retrying cannot fix (401, 404, ...) raise
``JudgeFatalError`` and stop the run.
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Iterable, Iterator


class JudgeFatalError(RuntimeError):
    """An error no retry can fix (bad URL, key or model): the run stops."""


@dataclass(frozen=True)
class JudgeReply:
    raw: str | None
    error: str | None = None


class OpenAIJudge:
    """Chat completions at ``temperature`` (default 0) from a bounded pool of worker threads. Retries
    are the SDK's: connection errors, timeouts, 408, 409, 429 and 5xx, with exponential backoff and
    jitter, honouring ``retry-after-ms`` / ``Retry-After``."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None, *, concurrency: int = 16,
                 max_retries: int = 6, timeout: float = 60.0, max_tokens: int = 8, temperature: float = 0.0):
        try:
            import openai
        except ImportError:
            raise JudgeFatalError("the openai package is missing: run `npm run setup` (it syncs .venv with "
                                  "python/requirements.lock) or install openai into $PERSONA_PYTHON's env") from None

        self.model = model
        self.base_url = base_url
        self.concurrency = max(1, concurrency)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_retries = max(0, max_retries)
        # A local server without keys (vllm serve, tests) still needs a non-empty key for the SDK.
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or "EMPTY", max_retries=self.max_retries,
                                    timeout=timeout)
        self._openai = openai

    def complete(self, prompt: str) -> JudgeReply:
        openai = self._openai
        try:
            r = self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], temperature=self.temperature,
                max_tokens=self.max_tokens)
        except openai.APIStatusError as e:
            if e.status_code in (408, 409, 429) or e.status_code >= 500:  # retried by the SDK, in vain
                return JudgeReply(None, f"gave up after {self.max_retries + 1} attempts; last error: "
                                        f"HTTP {e.status_code}: {e.message}")
            raise JudgeFatalError(f"HTTP {e.status_code} from {self.base_url}: {e.message}; check --base-url, "
                                  "--judge-model and the API key (--api-key-env)") from None
        except openai.APIConnectionError as e:  # timeouts included
            return JudgeReply(None, f"gave up after {self.max_retries + 1} attempts; last error: "
                                    f"{type(e).__name__}: {e}")
        except openai.APIResponseValidationError as e:
            return JudgeReply(None, f"malformed reply: {e}")
        if not r.choices:
            return JudgeReply(None, "reply without choices")
        content = r.choices[0].message.content
        return JudgeReply(content if isinstance(content, str) else "")

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

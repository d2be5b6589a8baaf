"""Generation backends: transformers (``hf``) and vLLM. Both take a list of prompts (token ids) with
one seed each and return one ``Generation`` per prompt; ``generate.py`` decides batching and writing.

hf: a batched sampling loop of our own (left padding, KV cache, temperature + top-p), where each row
draws its random numbers from its own ``torch.Generator`` seeded with the request's seed. A row's
sample therefore depends only on its own seed and its logits; the logits of a row in a left-padded
batch can differ from an unbatched run by float rounding, so ``generate.py`` keeps batch composition
fixed (see there). Identical results need the same hardware, software, dtype and batch size.

vLLM: one ``vllm.LLM`` for the whole run, prompts passed as token ids (the chat template already
holds BOS, so vLLM must not tokenize again), one ``SamplingParams(seed=...)`` per request.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float
    top_p: float
    max_tokens: int


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # "stop" (EOS) or "length" (max_tokens reached)
    num_tokens: int  # generated tokens, the EOS token included when finish_reason is "stop"


def vllm_importable() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("vllm") is not None
    except Exception:
        return False


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available (use --device cpu)")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return dtype


from .model_loading import hub_revision, is_local_model, load_causal_lm, load_tokenizer, require_cached  # noqa: E402,F401


# --------------------------------------------------------------------------------------------------
# transformers


def sample_next_tokens(logits, u, temperature: float, top_p: float):
    """One token per row: greedy at temperature 0, else temperature + nucleus (top-p) sampling by
    inverse CDF with the row's uniform draw ``u[i]`` (from that row's own generator)."""
    import torch

    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, sorted_idx = torch.sort(probs, dim=-1, descending=True)
    if top_p < 1.0:
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        keep = (sorted_probs.cumsum(dim=-1) - sorted_probs) < top_p
        sorted_probs = sorted_probs * keep
    cum = sorted_probs.cumsum(dim=-1)
    target = (u.to(cum.device, torch.float64) * cum[:, -1].double()).unsqueeze(-1).to(cum.dtype)
    pos = torch.searchsorted(cum, target, right=True)
    # Never step onto a zero-probability position (rounding at the very end of the CDF).
    pos = torch.minimum(pos, (sorted_probs > 0).sum(dim=-1, keepdim=True) - 1)
    return sorted_idx.gather(-1, pos).squeeze(-1)


class HFBackend:
    """transformers model + tokenizer; ``generate`` runs one batch with per-row generators."""

    name = "hf"

    def __init__(self, model_name: str, checkpoint: str | None, *, device: str = "auto", dtype: str = "auto"):
        import torch

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = load_tokenizer(model_name, checkpoint)
        self.model = load_causal_lm(model_name, checkpoint, dtype=getattr(torch, self.dtype))
        self.model.to(self.device).eval()
        eos = set()
        gc_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for e in (gc_eos if isinstance(gc_eos, (list, tuple)) else [gc_eos]):
            if e is not None:
                eos.add(int(e))
        if self.tokenizer.eos_token_id is not None:
            eos.add(int(self.tokenizer.eos_token_id))
        if not eos:
            raise SystemExit(f"{model_name}: neither the tokenizer nor the generation config defines an EOS token")
        self.eos_ids = eos
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(eos))

    def generate(self, prompt_ids: list[list[int]], seeds: list[int], params: SamplingSettings) -> list[Generation]:
        import torch

        B = len(prompt_ids)
        if B == 0:
            return []
        dev = self.device
        L = max(len(p) for p in prompt_ids)
        input_ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        attn = torch.zeros((B, L), dtype=torch.long)
        for i, p in enumerate(prompt_ids):
            input_ids[i, L - len(p):] = torch.tensor(p, dtype=torch.long)
            attn[i, L - len(p):] = 1
        input_ids, attn = input_ids.to(dev), attn.to(dev)
        position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
        T = params.max_tokens
        # Each row's uniforms come from its own CPU generator seeded with the request's seed: the
        # same on any device, and independent of the other rows.
        u_all = torch.stack([torch.rand(T, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
                             for s in seeds]).to(dev)
        tokens = torch.full((B, T), self.pad_id, dtype=torch.long, device=dev)
        lengths = torch.zeros(B, dtype=torch.long, device=dev)
        finished = torch.zeros(B, dtype=torch.bool, device=dev)
        stop_ids = torch.tensor(sorted(self.eos_ids), dtype=torch.long, device=dev)
        with torch.inference_mode():
            out = self.model(input_ids=input_ids, attention_mask=attn, position_ids=position_ids, use_cache=True,
                             logits_to_keep=1)
            for step in range(T):
                nxt = sample_next_tokens(out.logits[:, -1, :], u_all[:, step], params.temperature, params.top_p)
                # Finished rows get pad tokens (ignored) so shapes stay fixed.
                nxt = torch.where(finished, torch.full_like(nxt, self.pad_id), nxt)
                tokens[:, step] = nxt
                lengths += (~finished).long()
                finished |= torch.isin(nxt, stop_ids)
                if step == T - 1 or (step % 8 == 7 and bool(finished.all())):  # sync only every 8 steps
                    break
                attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=dev)], dim=-1)
                position_ids = position_ids[:, -1:] + 1
                out = self.model(input_ids=nxt[:, None], attention_mask=attn, position_ids=position_ids,
                                 past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
        tokens_l, lengths_l, finished_l = tokens.tolist(), lengths.tolist(), finished.tolist()
        results = []
        for i in range(B):
            toks = tokens_l[i][: lengths_l[i]]
            reason = "stop" if finished_l[i] else "length"
            body = toks[:-1] if reason == "stop" else toks
            text = self.tokenizer.decode(body, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            results.append(Generation(text, reason, len(toks)))
        return results


# --------------------------------------------------------------------------------------------------
# vLLM


class VLLMBackend:
    """vLLM's offline API: ``LLM(...)`` once, ``generate(prompts, [SamplingParams(seed=...)...])``.

    ``llm`` and ``sampling_params_cls`` may be injected (tests, where vLLM cannot be installed).
    """

    name = "vllm"

    def __init__(self, model_name: str, checkpoint: str | None, *, dtype: str = "auto", seed: int = 0,
                 tensor_parallel_size: int = 1, llm: Any = None, sampling_params_cls: Any = None,
                 max_model_len: int | None = None, gpu_memory_utilization: float | None = None):
        self.dtype = resolve_dtype(dtype, "cuda")
        if llm is None or sampling_params_cls is None:
            from vllm import LLM, SamplingParams  # lazy: vLLM is optional

            if llm is None:
                kw: dict[str, Any] = dict(model=model_name, tensor_parallel_size=tensor_parallel_size, seed=seed,
                                          dtype=self.dtype)
                require_cached(model_name, checkpoint)
                rev = hub_revision(model_name, checkpoint)
                if rev:
                    kw["revision"] = rev
                    kw["tokenizer_revision"] = rev
                if max_model_len:
                    kw["max_model_len"] = max_model_len
                if gpu_memory_utilization:
                    kw["gpu_memory_utilization"] = gpu_memory_utilization
                llm = LLM(**kw)
            sampling_params_cls = sampling_params_cls or SamplingParams
        self.llm = llm
        self.sampling_params_cls = sampling_params_cls
        self.tokenizer = llm.get_tokenizer()
        self.device = "cuda"

    def generate(self, prompt_ids: list[list[int]], seeds: list[int], params: SamplingSettings) -> list[Generation]:
        if not prompt_ids:
            return []
        sps = [
            self.sampling_params_cls(n=1, temperature=params.temperature, top_p=params.top_p,
                                     max_tokens=params.max_tokens, seed=int(s))
            for s in seeds
        ]
        prompts = [{"prompt_token_ids": list(p)} for p in prompt_ids]
        outs = self.llm.generate(prompts, sps, use_tqdm=False)
        if len(outs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outs)} outputs for {len(prompts)} prompts")
        results = []
        for o in outs:
            c = o.outputs[0]
            reason = c.finish_reason if c.finish_reason in ("stop", "length") else str(c.finish_reason)
            results.append(Generation(c.text, reason, len(c.token_ids)))
        return results

"""Generation backends: transformers (``hf``) and vLLM. Both take a list of prompts (token ids) with
one seed each and return one ``Generation`` per prompt; ``generate.py`` decides batching and writing.

hf: for OLMo-2, continuous batching over a static KV cache (``slot_engine``: fixed-shape decode step,
a CUDA graph on GPU); for other architectures a batched loop of our own (left padding, dynamic KV
cache). Either way each row draws its random numbers from its own ``torch.Generator`` seeded with the
request's seed, and ``generate_groups`` takes the run's requests cut into fixed groups (a static
partition of the whole queue), so a response depends only on its prompt, seed, group and the fixed
batch shapes - not on what else is done or in flight. Identical results need the same hardware,
software, dtype and batch settings.

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
    inverse CDF with the row's uniform draw ``u[i]`` (from that row's own generator); exact, with
    a top-K prefilter instead of a full sort where the nucleus lies inside the top K (see sampling)."""
    from .sampling import sample_exact

    return sample_exact(logits, u, temperature, top_p)


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

    def decode(self, tokens: list[int], finish_reason: str) -> Generation:
        body = tokens[:-1] if finish_reason == "stop" else tokens
        text = self.tokenizer.decode(body, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return Generation(text, finish_reason, len(tokens))

    def group_size(self, batch_size: int, prefill_batch: int) -> int:
        """Requests per static group: a prefill group (fast path) or a whole fixed batch (plain loop)."""
        from . import slot_engine

        return min(prefill_batch, batch_size) if slot_engine.supports(self.model) else batch_size

    def plan_slots(self, groups, params: SamplingSettings, *, batch_size: int, kv_cache_gb: float) -> tuple[int, int]:
        """(slots, cache_len) of the static cache: cache_len from the longest prompt of the whole run
        (so a resumed run gets the same), slots = batch_size, or fewer when kv_cache_gb caps them."""
        from .slot_engine import slots_for_budget

        longest = max((len(it.prompt) for g in groups for it in g), default=1)
        cache_len = -(-(longest + params.max_tokens) // 16) * 16
        slots = batch_size
        if kv_cache_gb > 0:
            slots = slots_for_budget(kv_cache_gb, cache_len, self.model.config, self.model.dtype, batch_size)
        # A prefill group is admitted whole: at least one group's worth of slots.
        return max(slots, max((len(g) for g in groups), default=1)), cache_len

    def generate_groups(self, groups, params: SamplingSettings, *, batch_size: int, kv_cache_gb: float = 0.0,
                        cuda_graph: bool | None = None, decode_attention: str = "matmul", compile_decode: str = "auto"):
        """Yield ``(key, Generation)`` for every wanted item of ``groups`` (lists of ``slot_engine.Item``,
        the static prefill groups), as they finish. See the module docstring for what stays fixed."""
        from . import slot_engine

        if not slot_engine.supports(self.model):
            for g in groups:  # other architectures: each group is one fixed batch of the plain loop
                if any(it.wanted for it in g):
                    gens = self.generate([it.prompt for it in g], [it.seed for it in g], params,
                                         [it.intervention for it in g])
                    yield from ((it.key, gen) for it, gen in zip(g, gens) if it.wanted)
            return
        groups = [g for g in groups]
        slots, cache_len = self.plan_slots(groups, params, batch_size=batch_size, kv_cache_gb=kv_cache_gb)
        engine = slot_engine.SlotEngine(self.model, slots=slots, cache_len=cache_len, max_tokens=params.max_tokens,
                                        temperature=params.temperature, top_p=params.top_p, eos_ids=self.eos_ids,
                                        pad_id=self.pad_id, use_cuda_graph=cuda_graph, attention=decode_attention,
                                        compile_decode=compile_decode, intervened=[it for g in groups for it in g])
        self.engine = engine
        for fin in engine.run(groups):
            yield fin.key, self.decode(fin.tokens, fin.finish_reason)

    def generate(self, prompt_ids: list[list[int]], seeds: list[int], params: SamplingSettings,
                 interventions: list | None = None) -> list[Generation]:
        """The plain loop (one fixed batch, left padding, dynamic cache): any architecture; one optional
        intervention per row (steering / capping, ``interventions.py``), at every position."""
        import torch

        from .interventions import hooks

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
        with torch.inference_mode(), hooks(self.model, interventions or [None] * B):
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
        return [self.decode(tokens_l[i][: lengths_l[i]], "stop" if finished_l[i] else "length") for i in range(B)]


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

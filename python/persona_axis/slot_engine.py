"""Continuous-batching generation for OLMo-2 with a preallocated (static) KV cache.

The cache holds ``slots`` rows of ``cache_len`` positions per layer. A request's keys always start at
position 0 of its slot, so what it computes never depends on the slot it sits in or on its neighbours:
- prefill: the queue of requests is cut into fixed groups of ``prefill_batch`` (a static partition of
  the whole run's queue, the same on resume); a group runs through the model's own forward (right
  padding, causal) and its keys/values are copied into free slots;
- decode: one step for all slots at a fixed shape (``slots`` x 1 token) through the model's own
  modules, attention over the slot's cache with a per-row length mask. Every operation is row-wise
  at a fixed shape, so a row's logits are the same whatever the other slots hold. On CUDA the step
  (forward + sampling) is captured once as a CUDA graph and replayed;
- finished rows free their slot, and the next prefill group fills free slots (continuous batching).
Randomness: request i draws its uniforms from ``torch.Generator().manual_seed(seed_i)`` (one per
generated token, CPU float64), so a response depends only on its prompt, its seed, its prefill group
and the fixed shapes (slots, cache_len) - not on the order or timing of the others.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from . import interventions
from .sampling import sample_fast, sample_full

# KV cache size: 2 (K and V) x layers x kv_heads x head_dim x dtype bytes per cached token


def supports(model) -> bool:
    """The fast path knows OLMo-2's block (q/k norm over the whole projection, post-norms)."""
    return getattr(model.config, "model_type", None) == "olmo2"


def kv_bytes_per_token(config, dtype: torch.dtype) -> int:
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * heads * head_dim * torch.empty((), dtype=dtype).element_size()


def slots_for_budget(kv_cache_gb: float, cache_len: int, config, dtype: torch.dtype, cap: int) -> int:
    """How many slots of ``cache_len`` tokens fit in ``kv_cache_gb`` GiB (at most ``cap``, at least 1)."""
    per_slot = cache_len * kv_bytes_per_token(config, dtype)
    return max(1, min(cap, int(kv_cache_gb * 2**30 // per_slot)))


@dataclass
class Item:
    """One request in the queue: ``wanted`` False = already done (prefilled with its group, not decoded)."""
    key: object
    prompt: list[int]
    seed: int
    wanted: bool = True
    intervention: interventions.Intervention | None = None  # steering / capping after block L (interventions.py)


@dataclass
class Finished:
    key: object
    tokens: list[int]
    finish_reason: str  # "stop" (an EOS token, included in tokens) or "length"


@dataclass
class _Row:
    item: Item
    tokens: list[int] = field(default_factory=list)


class SlotEngine:
    def __init__(self, model, *, slots: int, cache_len: int, max_tokens: int, temperature: float, top_p: float,
                 eos_ids: Iterable[int], pad_id: int, use_cuda_graph: bool | None = None,
                 attention: str = "matmul", compile_decode: str = "auto", intervened: Iterable[Item] = ()):
        if not supports(model):
            raise ValueError(f"SlotEngine supports OLMo-2 models, not {model.config.model_type}")
        self.model = model
        self.m = model.model
        cfg = model.config
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.B, self.C, self.T = slots, cache_len, max_tokens
        self.temperature, self.top_p = temperature, top_p
        self.eos = set(int(e) for e in eos_ids)
        self.pad_id = pad_id
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.heads = cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        shape = (self.B, self.kv_heads, self.C, self.head_dim)
        dev = self.device
        self.k_cache = [torch.zeros(shape, dtype=self.dtype, device=dev) for _ in range(cfg.num_hidden_layers)]
        self.v_cache = [torch.zeros(shape, dtype=self.dtype, device=dev) for _ in range(cfg.num_hidden_layers)]
        # Static inputs of the decode step: the token fed, its position (= keys already cached), the
        # index of the row's next uniform, the uniforms themselves.
        self.tok = torch.zeros(self.B, dtype=torch.long, device=dev)
        self.pos = torch.zeros(self.B, dtype=torch.long, device=dev)
        self.ustep = torch.zeros(self.B, dtype=torch.long, device=dev)
        self.u = torch.zeros((self.B, self.T + 1), dtype=torch.float64, device=dev)  # column T: idle rows
        self.kv_range = torch.arange(self.C, device=dev)
        self.rows_idx = torch.arange(self.B, device=dev)
        self.logits = torch.zeros((self.B, cfg.vocab_size), dtype=torch.float32, device=dev)
        self.next_tok = torch.zeros(self.B, dtype=torch.long, device=dev)
        self.covered = torch.ones(self.B, dtype=torch.bool, device=dev)
        self.iv = interventions.RowBuffers.for_items(intervened, self.B, cfg.hidden_size, dev)  # static, per slot
        if use_cuda_graph is None:
            use_cuda_graph = dev.type == "cuda"
        self.graph = None
        self.use_cuda_graph = use_cuda_graph
        self.steps = 0
        self.fallback_rows = 0
        if attention not in ("matmul", "sdpa") or compile_decode not in ("auto", "on", "off"):
            raise ValueError(f"attention {attention!r} (matmul|sdpa), compile_decode {compile_decode!r} (auto|on|off)")
        # matmul: batched matmuls with a length mask (run-to-run deterministic); sdpa: the fused kernel
        self.attention = attention
        # torch.compile of the decode step's model part (fuses norms, rope, softmax; same shapes every
        # step, so one compile), then captured in the CUDA graph like the eager step. auto = on with
        # CUDA graphs.
        self.compiled = compile_decode == "on" or (compile_decode == "auto" and use_cuda_graph)
        # (the function, not a bound method: no engine -> engine reference cycle keeping the cache alive)
        self._model_step = torch.compile(SlotEngine._model_logits, dynamic=False) if self.compiled else None

    # ---------------------------------------------------------------------------------------- decode
    def _forward_step(self) -> None:
        """One decode step of every slot, in place: logits, next token, positions advanced."""
        self.logits.copy_((self._model_step or SlotEngine._model_logits)(self))
        u = self.u.gather(1, self.ustep[:, None]).squeeze(1)
        nxt, covered = sample_fast(self.logits, u, self.temperature, self.top_p)
        self.next_tok.copy_(nxt)
        self.covered.copy_(covered)
        self.tok.copy_(nxt)
        self.pos.add_(1).clamp_(max=self.C - 1)
        self.ustep.add_(1).clamp_(max=self.T)

    def _model_logits(self) -> torch.Tensor:
        """The model's forward for one token per slot (K/V written into the cache); float32 logits."""
        m, B = self.m, self.B
        x = m.embed_tokens(self.tok[:, None])
        cos, sin = m.rotary_emb(x, self.pos[:, None])
        rope = sys.modules[type(m.layers[0].self_attn).__module__].apply_rotary_pos_emb  # the model's own
        mask = (self.kv_range[None, :] <= self.pos[:, None])[:, None, None, :]
        gqa = self.kv_heads != self.heads
        for li, layer in enumerate(m.layers):
            at = layer.self_attn
            q = at.q_norm(at.q_proj(x)).view(B, 1, self.heads, self.head_dim).transpose(1, 2)
            k = at.k_norm(at.k_proj(x)).view(B, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            v = at.v_proj(x).view(B, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = rope(q, k, cos, sin)
            kc, vc = self.k_cache[li], self.v_cache[li]
            kc[self.rows_idx, :, self.pos] = k[:, :, 0]
            vc[self.rows_idx, :, self.pos] = v[:, :, 0]
            if self.attention == "sdpa":
                o = F.scaled_dot_product_attention(q, kc, vc, attn_mask=mask, scale=at.scaling, enable_gqa=gqa)
            else:  # plain batched products: every (row, head) its own fixed-shape GEMV
                kk = kc if not gqa else kc.repeat_interleave(self.heads // self.kv_heads, dim=1)
                vv = vc if not gqa else vc.repeat_interleave(self.heads // self.kv_heads, dim=1)
                sc = torch.matmul(q, kk.transpose(2, 3)).float() * at.scaling
                sc = sc.masked_fill(~mask, float("-inf"))
                o = torch.matmul(torch.softmax(sc, dim=-1).to(vv.dtype), vv)
            o = at.o_proj(o.transpose(1, 2).reshape(B, 1, -1))
            x = x + layer.post_attention_layernorm(o)
            x = x + layer.post_feedforward_layernorm(layer.mlp(x))
            x = x if self.iv is None else self.iv.apply(li, x)
        return self.model.lm_head(m.norm(x))[:, 0].float()

    def _capture(self) -> None:
        torch.cuda.synchronize(self.device)
        s = torch.cuda.Stream(self.device)
        s.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(s), torch.inference_mode():
            try:
                for _ in range(2):
                    self._forward_step()  # the compile happens here
            except Exception as e:  # e.g. no C compiler for Triton on this node: the eager step still works
                if self._model_step is None:
                    raise
                print(f"warning: torch.compile of the decode step failed ({type(e).__name__}: {str(e)[:200]}); "
                      "using the eager step (slower; set generation.compile_decode: off to skip the attempt)",
                      file=sys.stderr, flush=True)
                self._model_step, self.compiled = None, False
                for _ in range(2):
                    self._forward_step()
        torch.cuda.current_stream(self.device).wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g), torch.inference_mode():
            self._forward_step()
        self.graph = g
        self.pos.zero_()
        self.ustep.zero_()
        self.tok.zero_()

    def _step(self) -> None:
        if self.use_cuda_graph:
            if self.graph is None:
                self._capture()
            self.graph.replay()
        else:
            with torch.inference_mode():
                self._forward_step()
        self.steps += 1

    # --------------------------------------------------------------------------------------- prefill
    def _prefill(self, group: list[Item]) -> tuple[torch.Tensor, list]:
        """Run a group through the model; returns last-position logits (float32) and per-layer K/V."""
        G = len(group)
        L = max(len(it.prompt) for it in group)
        ids = torch.full((G, L), self.pad_id, dtype=torch.long)
        attn = torch.zeros((G, L), dtype=torch.long)
        for i, it in enumerate(group):
            ids[i, :len(it.prompt)] = torch.tensor(it.prompt, dtype=torch.long)
            attn[i, :len(it.prompt)] = 1
        ids, attn = ids.to(self.device), attn.to(self.device)
        with torch.inference_mode(), interventions.hooks(self.model, [it.intervention for it in group]):
            out = self.m(input_ids=ids, attention_mask=attn, use_cache=True)
            last = torch.tensor([len(it.prompt) - 1 for it in group], device=self.device)
            h = out.last_hidden_state[torch.arange(G, device=self.device), last]
            logits = self.model.lm_head(h).float()
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        return logits, kv

    # ------------------------------------------------------------------------------------------ run
    def run(self, groups: list[list[Item]]) -> Iterator[Finished]:
        """Generate every wanted item of the prefill groups (in this order); yields results as rows
        finish (in no fixed order)."""
        groups = [g for g in groups if any(it.wanted for it in g)]
        for g in groups:
            if sum(it.wanted for it in g) > self.B:
                raise ValueError(f"a prefill group of {len(g)} requests does not fit in {self.B} slots")
            for it in g:
                if len(it.prompt) + self.T > self.C:
                    raise ValueError(f"prompt of {len(it.prompt)} tokens + {self.T} new exceeds the cache ({self.C})")
        if self.iv is None and interventions.layers_of(it for g in groups for it in g):
            raise ValueError("requests with interventions: build the engine with intervened=<those requests>")
        if self.use_cuda_graph and self.graph is None:
            self._capture()  # before any row is admitted: the capture's warm-up steps change the state
        free = list(range(self.B))
        active: dict[int, _Row] = {}
        gi = 0
        while gi < len(groups) or active:
            done: list[Finished] = []
            while gi < len(groups) and len(free) >= sum(it.wanted for it in groups[gi]):
                done += self._admit(groups[gi], free, active)
                gi += 1
            yield from done
            if not active:
                continue
            self._step()
            toks = self.next_tok.tolist()
            covered = self.covered.tolist()
            if not all(covered[s] for s in active):
                self._fallback([s for s in active if not covered[s]], toks)
            for s in sorted(active):
                row = active[s]
                t = toks[s]
                row.tokens.append(t)
                fin = self._finish_reason(row.tokens)
                if fin:
                    del active[s]
                    free.append(s)
                    yield Finished(row.item.key, row.tokens, fin)
            free.sort()

    def _finish_reason(self, tokens: list[int]) -> str | None:
        if tokens[-1] in self.eos:
            return "stop"
        return "length" if len(tokens) >= self.T else None

    def _fallback(self, slots: list[int], toks: list[int]) -> None:
        """Rows whose nucleus was not inside the top-K: exact full-sort sampling from the step's logits."""
        idx = torch.tensor(slots, device=self.device)
        u = self.u[idx].gather(1, ((self.ustep[idx] - 1).clamp(min=0))[:, None]).squeeze(1)
        fixed = sample_full(self.logits[idx], u, self.temperature, self.top_p)
        self.tok[idx] = fixed
        for s, t in zip(slots, fixed.tolist()):
            toks[s] = t
        self.fallback_rows += len(slots)

    def _admit(self, group: list[Item], free: list[int], active: dict[int, _Row]) -> list[Finished]:
        logits, kv = self._prefill(group)
        rows = [i for i, it in enumerate(group) if it.wanted]
        us = torch.stack([torch.rand(self.T, generator=torch.Generator().manual_seed(int(group[i].seed)),
                                     dtype=torch.float64) for i in rows]).to(self.device)
        first = sample_full_or_fast(logits[rows], us[:, 0], self.temperature, self.top_p).tolist()
        out: list[Finished] = []
        place_rows, place_slots = [], []
        for j, i in enumerate(rows):
            row = _Row(group[i], [first[j]])
            fin = self._finish_reason(row.tokens)
            if fin:
                out.append(Finished(row.item.key, row.tokens, fin))
                continue
            s = free.pop(0)
            active[s] = row
            place_rows.append((i, j))
            place_slots.append(s)
        if place_slots:
            src = torch.tensor([i for i, _ in place_rows], device=self.device)
            dst = torch.tensor(place_slots, device=self.device)
            L = kv[0][0].shape[2]
            for li, (k, v) in enumerate(kv):
                self.k_cache[li][dst, :, :L] = k[src]
                self.v_cache[li][dst, :, :L] = v[src]
            self.u[dst, :self.T] = us[[j for _, j in place_rows]]
            self.tok[dst] = torch.tensor([first[j] for _, j in place_rows], device=self.device)
            self.pos[dst] = torch.tensor([len(group[i].prompt) for i, _ in place_rows], device=self.device)
            self.ustep[dst] = 1
            if self.iv is not None:
                self.iv.place(dst, [group[i].intervention for i, _ in place_rows])
        return out


def sample_full_or_fast(logits, u, temperature, top_p):
    """The first token after prefill, sampled exactly as the decode step does (fast + fallback)."""
    from .sampling import sample_exact

    return sample_exact(logits, u, temperature, top_p)

"""The OLMo-2 continuous-batching engine (slot_engine) and the exact top-K sampler, on a tiny local
model on CPU: its decode step computes the model's own logits, a row's tokens do not depend on its
neighbours or on what else is queued, and the top-K sampler equals the full-sort reference."""
from __future__ import annotations

import torch

from persona_axis.sampling import sample_fast, sample_full
from persona_axis.slot_engine import Item, SlotEngine, slots_for_budget


def load(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def prompts(n, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab - 1, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def engine(model, slots, T=10, temperature=0.9, top_p=0.9):
    return SlotEngine(model, slots=slots, cache_len=32, max_tokens=T, temperature=temperature, top_p=top_p,
                      eos_ids=[0], pad_id=1)


def run(eng, ps, wanted=None, group=3):
    items = [Item(i, p, 100 + i, True if wanted is None else wanted[i]) for i, p in enumerate(ps)]
    return {f.key: (f.tokens, f.finish_reason) for f in eng.run([items[i:i + group] for i in range(0, len(items), group)])}


def test_decode_step_gives_the_models_own_logits(tiny_olmo2):
    model = load(tiny_olmo2)
    ps = prompts(3, model.config.vocab_size)
    eng = engine(model, slots=4, temperature=0.0)
    out = run(eng, ps)  # greedy: each row's tokens are the argmax of the engine's logits
    for i, p in enumerate(ps):
        toks = out[i][0]
        seq = torch.tensor([p + toks[:-1]])
        with torch.no_grad():
            ref = model(input_ids=seq).logits[0, len(p) - 1:].argmax(-1).tolist()
        assert ref == toks, (i, ref, toks)


def test_rows_do_not_depend_on_neighbours_or_schedule(tiny_olmo2):
    model = load(tiny_olmo2)
    ps = prompts(10, model.config.vocab_size, seed=1)
    full = run(engine(model, slots=4), ps)
    assert len(full) == 10 and {r for _, r in full.values()} <= {"stop", "length"}
    # As a resumed run does: the same groups, only some rows wanted, in two passes.
    first = run(engine(model, slots=4), ps, wanted=[i % 3 == 0 for i in range(10)])
    rest = run(engine(model, slots=4), ps, wanted=[i % 3 != 0 for i in range(10)])
    assert sorted(first) == [0, 3, 6, 9] and {**first, **rest} == full
    # Another seed for one request changes only that request.
    items = [Item(i, p, 100 + i + (1000 if i == 4 else 0)) for i, p in enumerate(ps)]
    eng = engine(model, slots=4)
    other = {f.key: (f.tokens, f.finish_reason) for f in eng.run([items[i:i + 3] for i in range(0, 10, 3)])}
    assert other[4] != full[4] and all(other[k] == full[k] for k in full if k != 4)


def test_top_k_sampler_equals_the_full_sort_and_falls_back():
    g = torch.Generator().manual_seed(0)
    peaky = torch.randn(64, 5000, generator=g) * 6  # the nucleus lies inside the top K
    flat = torch.randn(8, 5000, generator=g) * 0.1  # it does not: flagged for the fallback
    u = torch.rand(64, generator=g, dtype=torch.float64)
    toks, covered = sample_fast(peaky, u, 0.7, 0.9, top_k=64)
    assert bool(covered.all())
    assert toks.tolist() == sample_full(peaky, u, 0.7, 0.9).tolist()
    _, covered = sample_fast(flat, u[:8], 0.7, 0.9, top_k=64)
    assert not bool(covered.any())


def test_slots_follow_the_kv_budget(tiny_olmo2):
    cfg = load(tiny_olmo2).config
    per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 4
    assert slots_for_budget(per_token * 100 * 7 / 2**30, 100, cfg, torch.float32, 64) == 7
    assert slots_for_budget(1000.0, 100, cfg, torch.float32, 64) == 64
    assert slots_for_budget(1e-9, 100, cfg, torch.float32, 64) == 1

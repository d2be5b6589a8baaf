"""Steering and capping (interventions.py) through the slot engine, on a planted tiny OLMo-2 whose
emitted token is decided by one residual direction u at layer L:
- blocks after L are made the identity (zero attention and MLP output projections) and the LM head
  has two non-zero rows, +c u (token A) and -c u (token B), with a unit final norm: greedy decoding
  emits A exactly when the residual after block L projects positively on u;
- so steering by alpha * v must emit A exactly when p + alpha <v, u> > 0, p being the unsteered
  projection (blocks up to L do not see the steering), for the axis, a random and an orthogonal
  direction alike; capping at tau must emit A exactly when max(p, tau) > 0, and capture with the
  cap on must read projections clamped to tau.
Plus: a row's tokens do not depend on its neighbours' interventions or on resume."""
from __future__ import annotations

import pytest
import torch

from persona_axis.interventions import Intervention, cap, hooks, steer
from persona_axis.model_blocks import TruncatedForward
from persona_axis.slot_engine import Item, SlotEngine

L = 1
TOK_A, TOK_B = 7, 9


@pytest.fixture(scope="module")
def planted(tiny_olmo2, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_olmo2, dtype=torch.float32).eval()
    d = model.config.hidden_size
    u = torch.randn(d, generator=torch.Generator().manual_seed(3))
    u = u / u.norm()
    with torch.no_grad():
        for layer in model.model.layers[L + 1:]:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[TOK_A] = 50 * u
        model.lm_head.weight[TOK_B] = -50 * u
    out = tmp_path_factory.mktemp("planted")
    model.save_pretrained(out)
    return AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval(), u


def prompts(n, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(10, vocab - 1, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def run(model, items, slots=5, group=4, T=6, temperature=0.0):
    eng = SlotEngine(model, slots=slots, cache_len=32, max_tokens=T, temperature=temperature, top_p=0.9,
                     eos_ids=[0], pad_id=1, intervened=items)
    return {f.key: f.tokens for f in eng.run([items[i:i + group] for i in range(0, len(items), group)])}


def projections(model, seq, u, intervention=None):
    """Layer-L residual of ``seq`` projected on u, read as capture reads it (block output hook)."""
    got = {}
    with hooks(model, [intervention]):
        TruncatedForward(model, [L])(torch.tensor([seq]), lambda i, h: got.__setitem__(i, h[0].detach().clone()))
    return got[L] @ u


def directions(u):
    g = torch.Generator().manual_seed(5)
    r = torch.randn(u.shape[0], generator=g)
    r = r / r.norm()  # random, same norm as u
    o = torch.randn(u.shape[0], generator=g)
    o = o - (o @ u) * u
    o = o / o.norm()  # orthogonal to u
    return {"axis": u, "random": r, "orthogonal": o}


def test_steering_moves_the_planted_token_by_the_predicted_amount(planted):
    model, u = planted
    ps = prompts(6, model.config.vocab_size)
    alphas = [-3.0, -1.0, -0.3, 0.0, 0.3, 1.0, 3.0]
    dirs = directions(u)
    items = [Item((name, a, i), p, i, intervention=steer({L: v}, a)) for name, v in dirs.items() for a in alphas
             for i, p in enumerate(ps)]
    out = run(model, items)  # the whole sweep: one batched generation, rows of every direction mixed
    frac = {}
    for (name, a, i), toks in out.items():
        p = projections(model, ps[i] + toks[:-1], u)[len(ps[i]) - 1:]
        shift = a * float(dirs[name] @ u)
        predicted = [TOK_A if float(x) + shift > 0 else TOK_B for x in p]
        assert toks == predicted, (name, a, i)
        frac[name, a] = frac.get((name, a), 0) + sum(t == TOK_A for t in toks)  # A tokens of the condition
    base = {i: out["axis", 0.0, i] for i in range(len(ps))}
    assert all(out["orthogonal", a, i] == base[i] for a in alphas for i in range(len(ps)))  # no effect
    assert frac["axis", 3.0] == len(ps) * 6 and frac["axis", -3.0] == 0  # the axis moves it all the way
    assert frac["axis", -3.0] < frac["axis", 0.0] < frac["axis", 3.0]
    spread = lambda n: frac[n, 3.0] - frac[n, -3.0]  # noqa: E731
    assert spread("random") < spread("axis") and spread("orthogonal") == 0


def test_capping_clamps_the_captured_projection_exactly(planted):
    model, u = planted
    ps = prompts(6, model.config.vocab_size, seed=2)
    ref = run(model, [Item(i, p, i) for i, p in enumerate(ps)])
    p_all = torch.cat([projections(model, ps[i] + ref[i], u) for i in range(len(ps))])
    for tau in (float(p_all.quantile(0.25)), float(p_all.quantile(0.75))):
        iv = cap({L: u * 3.0}, {L: tau})  # any norm: the cap uses the unit direction
        clamped = 0
        for i in range(len(ps)):
            seq = ps[i] + ref[i]
            before, after = projections(model, seq, u), projections(model, seq, u, iv)
            low = before < tau
            clamped += int(low.sum())
            assert torch.allclose(after[low], torch.full_like(after[low], tau), atol=1e-5)
            assert torch.equal(after[~low], before[~low])  # above tau: untouched
        assert clamped >= len(p_all) // 5
        capped = run(model, [Item(i, p, i, intervention=iv) for i, p in enumerate(ps)])
        for i, toks in capped.items():
            p = projections(model, ps[i] + toks[:-1], u)[len(ps[i]) - 1:]
            assert toks == [TOK_A if max(float(x), tau) > 0 else TOK_B for x in p]


def test_rows_do_not_depend_on_neighbours_interventions_or_resume(tiny_olmo2):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_olmo2, dtype=torch.float32).eval()
    d = model.config.hidden_size
    ps = prompts(10, model.config.vocab_size, seed=1)
    g = torch.Generator().manual_seed(0)
    vec = [torch.randn(d, generator=g) * 4 for _ in ps]
    ivs = [None if i % 4 == 0 else steer({1: vec[i]}, 1.0) if i % 2 else
           Intervention(add={2: vec[i]}, cap={1: (vec[i] / vec[i].norm(), 0.5)}) for i in range(len(ps))]

    def items(wanted=None, change=None):
        return [Item(i, p, 100 + i, True if wanted is None else wanted[i],
                     steer({1: -vec[i]}, 2.0) if i == change else ivs[i]) for i, p in enumerate(ps)]

    full = run(model, items(), slots=4, group=3, T=8, temperature=0.9)
    plain = run(model, [Item(i, p, 100 + i) for i, p in enumerate(ps)], slots=4, group=3, T=8, temperature=0.9)
    assert all(full[i] == plain[i] for i in range(0, len(ps), 4))  # no intervention: the plain tokens
    assert sum(full[i] != plain[i] for i in range(len(ps)) if i % 4) >= 5  # the interventions act
    # resumed as generate does: the same static groups, only some rows wanted, in two passes
    first = run(model, items(wanted=[i % 3 == 0 for i in range(10)]), slots=4, group=3, T=8, temperature=0.9)
    rest = run(model, items(wanted=[i % 3 != 0 for i in range(10)]), slots=4, group=3, T=8, temperature=0.9)
    assert {**first, **rest} == full
    # another intervention on row 4 changes only row 4
    other = run(model, items(change=4), slots=4, group=3, T=8, temperature=0.9)
    assert other[4] != full[4] and all(other[k] == full[k] for k in full if k != 4)


def test_engine_refuses_interventions_it_has_no_buffers_for(tiny_olmo2):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_olmo2, dtype=torch.float32).eval()
    v = torch.ones(model.config.hidden_size)
    eng = SlotEngine(model, slots=2, cache_len=32, max_tokens=3, temperature=0.0, top_p=1.0, eos_ids=[0], pad_id=1)
    with pytest.raises(ValueError, match="intervened"):
        list(eng.run([[Item(0, [5, 6, 7], 0, intervention=steer({1: v}, 1.0))]]))
    eng = SlotEngine(model, slots=2, cache_len=32, max_tokens=3, temperature=0.0, top_p=1.0, eos_ids=[0], pad_id=1,
                     intervened=[Item(0, [5], 0, intervention=steer({1: v}, 1.0))])
    with pytest.raises(ValueError, match="buffers"):
        list(eng.run([[Item(0, [5, 6, 7], 0, intervention=steer({2: v}, 1.0))]]))


def test_plain_loop_applies_the_intervention_per_row(tiny_neox):
    """Other architectures (GPT-NeoX) steer through the block hooks of the plain loop."""
    from persona_axis.generation_backends import HFBackend, SamplingSettings

    be = HFBackend(str(tiny_neox), None, device="cpu", dtype="float32")
    d = be.model.config.hidden_size
    ids = [[5, 6, 7, 8], [9, 10, 11]]
    s = SamplingSettings(0.0, 1.0, 5)
    v = torch.randn(d, generator=torch.Generator().manual_seed(1)) * 20
    plain = be.generate(ids, [1, 2], s)
    mixed = be.generate(ids, [1, 2], s, [steer({1: v}, 1.0), None])
    assert mixed[1] == plain[1] and mixed[0] != plain[0]
    assert be.generate(ids[:1], [1], s, [steer({1: v}, 1.0)])[0] == mixed[0]

#!/usr/bin/env python3
"""Diagnostic (issue 12): is a row's decode step independent of its slot and neighbours on this GPU?
Runs the 7B-shaped random model's engine state through one eager step, then with the slots permuted
and with other rows' contents changed, per component; prints which ops differ bitwise."""
import sys, json
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python")); sys.path.insert(0, str(ROOT / "bench"))
import torch
import torch.nn.functional as F
from gen_bench import build_model, make_prompts, run_ours

dev = torch.device("cuda")
model = build_model(dev, "--small" in sys.argv, 3.0)
V = model.config.vocab_size
res = {}
g = torch.Generator(device=dev).manual_seed(0)
B = 64
x = torch.randn(B, 4096 if "--small" not in sys.argv else 128, device=dev, dtype=torch.bfloat16, generator=g)
perm = torch.randperm(B, device=dev, generator=g)
W = model.model.layers[0].self_attn.o_proj
res["linear_perm_equal"] = bool(torch.equal(W(x)[perm], W(x[perm])))
x2 = x.clone(); x2[1:] = torch.randn_like(x2[1:])
res["linear_neighbour_equal"] = bool(torch.equal(W(x)[0], W(x2)[0]))
H, D, C = 32, 128, 416
if "--small" in sys.argv: H, D = 4, 32
q = torch.randn(B, H, 1, D, device=dev, dtype=torch.bfloat16, generator=g)
k = torch.randn(B, H, C, D, device=dev, dtype=torch.bfloat16, generator=g)
v = torch.randn(B, H, C, D, device=dev, dtype=torch.bfloat16, generator=g)
pos = torch.randint(50, C, (B,), device=dev, generator=g)
mask = (torch.arange(C, device=dev)[None] <= pos[:, None])[:, None, None, :]
o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
res["sdpa_perm_equal"] = bool(torch.equal(o[perm], F.scaled_dot_product_attention(q[perm], k[perm], v[perm], attn_mask=mask[perm])))
sc = torch.matmul(q, k.transpose(2, 3)).float().masked_fill(~mask, float("-inf"))
om = torch.matmul(torch.softmax(sc, -1).to(v.dtype), v)
scp = torch.matmul(q[perm], k[perm].transpose(2, 3)).float().masked_fill(~mask[perm], float("-inf"))
res["matmul_attn_perm_equal"] = bool(torch.equal(om[perm], torch.matmul(torch.softmax(scp, -1).to(v.dtype), v[perm])))
# whole engine: run-to-run, and resume (half, other half), per attention implementation
ps = make_prompts(128, V, seed=3); seeds = list(range(128))
for attn in ("matmul", "sdpa"):
    for graph in (True, False):
        a, st = run_ours(model, ps, seeds, B, 64, 0.7, 0.9, attention=attn)
        b, _ = run_ours(model, ps, seeds, B, 64, 0.7, 0.9, attention=attn)
        half = [i % 2 == 0 for i in range(128)]
        c1, _ = run_ours(model, ps, seeds, B, 64, 0.7, 0.9, attention=attn, wanted=half)
        c2, _ = run_ours(model, ps, seeds, B, 64, 0.7, 0.9, attention=attn, wanted=[not h for h in half])
        c = {**c1, **c2}
        res[f"{attn}_run_to_run"] = sum(a[i] == b[i] for i in a)
        res[f"{attn}_resume"] = sum(a[i] == c[i] for i in a)
        res[f"{attn}_first_token_resume"] = sum(a[i][0] == c[i][0] for i in a)
        res[f"{attn}_tok_s"] = st["tok_s"]
        break
print(json.dumps(res, indent=1))

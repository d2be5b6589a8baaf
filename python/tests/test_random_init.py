"""The random-init control: the study model's config, seeded fresh weights, no weight files read."""
from __future__ import annotations

import torch

from persona_axis.capture import load_model
from persona_axis.random_init import checkpoint_label


def test_random_init_is_the_same_architecture_with_seeded_new_weights(tiny_olmo2, tmp_path):
    trained = load_model(str(tiny_olmo2), None, "float32", "cpu")
    a = load_model(str(tiny_olmo2), None, "float32", "cpu", random_init_seed=1)
    b = load_model(str(tiny_olmo2), None, "float32", "cpu", random_init_seed=1)
    c = load_model(str(tiny_olmo2), None, "float32", "cpu", random_init_seed=2)
    assert type(a) is type(trained) and a.config.to_dict()["hidden_size"] == trained.config.hidden_size
    sa, sb, sc, st = (m.state_dict() for m in (a, b, c, trained))
    assert sa.keys() == st.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)                      # seeded: reproducible
    w = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(sa[w], sc[w]) and not torch.equal(sa[w], st[w])  # another seed / not the trained weights
    # the config alone suffices: no weight file is read
    cfg_only = tmp_path / "cfg"
    cfg_only.mkdir()
    (cfg_only / "config.json").write_text((tiny_olmo2 / "config.json").read_text())
    d = load_model(str(cfg_only), None, "float32", "cpu", random_init_seed=1)
    assert all(torch.equal(d.state_dict()[k], sa[k]) for k in sa)
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    assert checkpoint_label("main", 3) == "main+random-init:3" and checkpoint_label("", 0) == "random-init:0"

#!/bin/bash
# The hf backend's decode-step params on CUDA (generation.decode_attention, generation.compile_decode):
# each setting runs through the generate step's flags, run.json records it, a rerun of the same setting
# is byte-identical, and the settings' transcripts differ only in float rounding (some responses).
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ind PYTHONPATH=python HF_HUB_OFFLINE=1
python3 -c "from persona_axis.tiny_models import build_tiny_model as b; b('/tmp/m','olmo2',seed=0,hidden_size=1024,num_layers=8,num_heads=16,intermediate_size=2816)" >/dev/null 2>&1 || exit 1
c="--model-name /tmp/m --roles-dir data/roles/instructions --questions data/questions.jsonl --question-count 10 --num-rollouts 2 --backend hf --device cuda --dtype bfloat16 --max-tokens 128 --batch-size 128 --prefill-batch 16 --temperature 0.7 --top-p 0.9 --seed 5 --model-display-name Tiny --no-progress"
for s in "matmul auto" "matmul off" "sdpa auto" "matmul auto"; do
  set -- $s; d=/tmp/d-$1-$2; [ -d $d ] && d=$d-again
  t0=$(date +%s.%N)
  timeout 300 python3 -m persona_axis.generate $c --decode-attention $1 --compile-decode $2 --output-dir $d 2>&1 | grep -E "^error|^done" | tail -1
  python3 -c "import json,sys; r=json.load(open('$d/run.json')); print('$d', r['decode_step'], '%.1f s' % ($(date +%s.%N)-$t0))"
done
same() { diff -rq "$1" "$2" >/dev/null && echo "$1 vs $2: IDENTICAL" || echo "$1 vs $2: $(python3 - "$1" "$2" <<'PY'
import json, pathlib, sys
a, b = (pathlib.Path(x) for x in sys.argv[1:])
n = d = 0
for f in sorted(a.glob("*.jsonl")):
    for x, y in zip(f.read_text().splitlines(), (b / f.name).read_text().splitlines()):
        n += 1; d += json.loads(x)["response"] != json.loads(y)["response"]
print(f"{d}/{n} responses differ")
PY
)"; }
same /tmp/d-matmul-auto /tmp/d-matmul-auto-again
same /tmp/d-matmul-auto /tmp/d-matmul-off
same /tmp/d-matmul-auto /tmp/d-sdpa-auto

#!/bin/bash
# Issue 12, on a GPU machine: the pipeline's generate step on CUDA (compiled + graphed slot engine):
# --gpus 2 (two workers sharing the one GPU) vs one worker, and a worker SIGKILLed + resume.
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ind PYTHONPATH=python HF_HUB_OFFLINE=1
python3 -c "from persona_axis.tiny_models import build_tiny_model as b; b('/tmp/m','olmo2',seed=0,hidden_size=1024,num_layers=8,num_heads=16,intermediate_size=2816)" || exit 1
c="--model-name /tmp/m --roles-dir data/roles/instructions --questions data/questions.jsonl --question-count 20 --num-rollouts 2 --backend hf --device cuda --dtype bfloat16 --max-tokens 128 --batch-size 128 --prefill-batch 16 --temperature 0.7 --top-p 0.9 --seed 5 --model-display-name Tiny --no-progress"
t0=$(date +%s.%N); timeout 200 python3 -m persona_axis.generate $c --output-dir /tmp/g1 --gpus 1 2>&1 | grep -v Loading | tail -3; t1=$(date +%s.%N)
timeout 200 python3 -m persona_axis.generate $c --output-dir /tmp/g2 --gpus 2 2>&1 | grep -v Loading | tail -3; t2=$(date +%s.%N)
python3 -c "print(\"one worker %.1f s; two workers on one GPU %.1f s\" % ($t1-$t0, $t2-$t1))"
diff -r /tmp/g1 /tmp/g2 >/dev/null && echo "GPU: --gpus 2 IDENTICAL to --gpus 1" || echo "GPU: --gpus 2 DIFFERS"
cat /tmp/g1/*.jsonl | wc -l; cat /tmp/g1/*.jsonl | python3 -c "import sys,json; print('tokens', sum(json.loads(l)['num_tokens'] for l in sys.stdin))"
# crash: SIGKILL worker 1 once it has written lines, then resume
timeout 200 python3 -m persona_axis.generate $c --output-dir /tmp/g3 --gpus 2 > /tmp/g3.log 2>&1 &
parent=$!
for i in $(seq 1 2000); do
  n=$(cat /tmp/g3/.parts/w1/*.jsonl 2>/dev/null | wc -l)
  if [ "$n" -ge 50 ]; then w=$(pgrep -f -- "--worker 1/2" | head -1); [ -n "$w" ] && kill -9 $w && echo "killed worker 1 pid $w after $n lines"; break; fi
  sleep 0.05
done
wait $parent; echo "crashed run exit $?"; grep -v Loading /tmp/g3.log | tail -2
kept=$(cat /tmp/g3/*.jsonl | wc -l); echo "kept $kept lines"
timeout 200 python3 -m persona_axis.generate $c --output-dir /tmp/g3 --gpus 2 2>&1 | grep -v Loading | tail -3
diff -r /tmp/g1 /tmp/g3 >/dev/null && echo "GPU: crash + resume IDENTICAL to one worker" || echo "GPU: crash + resume DIFFERS"

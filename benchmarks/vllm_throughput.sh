#!/usr/bin/env bash
# evalarena's vllm: backend vs. `vllm bench throughput`, same model, same prompts,
# same output lengths, on this GPU machine, in this run. Target: ratio >= 0.95.
#
#   benchmarks/vllm_throughput.sh MODEL [NUM_PROMPTS] [OUTPUT_LEN] [EXTRA_VLLM_OPTIONS]
#   benchmarks/vllm_throughput.sh Qwen/Qwen2.5-1.5B-Instruct 1000 256
#   benchmarks/vllm_throughput.sh /models/llama-8b 2000 256 "tensor_parallel_size=2"
#
# Both sides: text prompts (no chat template), temperature 1.0, top_p 1.0 and
# ignore_eos, because that is what `vllm bench throughput` sends; every request
# then generates exactly OUTPUT_LEN tokens on both sides and requests/s compares
# like with like. Model loading is outside both timings: vLLM times only
# generation, and evalarena's side times `execute` (planning excluded; storing
# every chunk in SQLite, scoring and the bootstrap included) on a loaded model.
# Needs: a CUDA GPU, `pip install -e '.[vllm]'`. Nothing is downloaded here
# unless MODEL is a hub id that is not cached yet.
set -euo pipefail

MODEL=${1:?usage: $0 MODEL [NUM_PROMPTS] [OUTPUT_LEN] [EXTRA_VLLM_OPTIONS]}
NUM=${2:-1000}
OUT=${3:-256}
EXTRA=${4:-}
PYTHON=${PYTHON:-python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evalarena-vllm-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# 1. the prompts, written twice: a suite for evalarena, ShareGPT JSON for vLLM
"$PYTHON" - "$WORK" "$NUM" "$OUT" <<'EOF'
import json, random, sys
from pathlib import Path

work, num, out = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1234)
words = ("river stone window market garden letter bridge winter engine silver forest "
         "harbor candle mirror ladder violin desert comet lantern meadow").split()
prompts = [f"Story {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(60, 180)))
           + "\nContinue the story:" for i in range(num)]
with (work / "prompts.jsonl").open("w") as f:
    for i, p in enumerate(prompts):
        f.write(json.dumps({"id": f"p{i}", "prompt": p, "answer": "-"}) + "\n")
(work / "bench.yaml").write_text(f"""name: vllm-throughput
description: synthetic prompts for benchmarks/vllm_throughput.sh
license: Apache-2.0 (generated)
kind: generate
data:
  path: prompts.jsonl
  id_field: id
prompt:
  text: "{{{{ prompt }}}}"
target: "{{{{ answer }}}}"
generation:
  max_tokens: {out}
  temperature: 1.0
  top_p: 1.0
metrics: [exact_match]
""")
json.dump([{"id": f"p{i}", "conversations": [{"from": "human", "value": p},
                                             {"from": "gpt", "value": "-"}]}
           for i, p in enumerate(prompts)], (work / "sharegpt.json").open("w"))
EOF

# 2. the peer: vLLM's own offline throughput benchmark
PEER_ARGS=()
for opt in ${EXTRA//&/ }; do  # tensor_parallel_size=2 -> --tensor-parallel-size 2
  key=${opt%%=*}
  PEER_ARGS+=("--${key//_/-}" "${opt#*=}")
done
vllm bench throughput --model "$MODEL" --dataset-name sharegpt \
  --dataset-path "$WORK/sharegpt.json" --num-prompts "$NUM" --output-len "$OUT" \
  --output-json "$WORK/peer.json" ${PEER_ARGS[@]+"${PEER_ARGS[@]}"} >"$WORK/peer.log" 2>&1 \
  || { tail -30 "$WORK/peer.log"; exit 1; }

# 3. evalarena: the same prompts through the vllm: backend and the runner
"$PYTHON" - "$WORK" "$MODEL" "$EXTRA" <<'EOF'
import json, sys, tempfile, time
from pathlib import Path

from harness.backends import load_backend
from harness.runner import execute, plan_run
from harness.store import Store

work, model, extra = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
spec = f"vllm:{model}?ignore_eos=true" + (f"&{extra}" if extra else "")
plan = plan_run(str(work / "bench.yaml"), spec)
backend = load_backend(plan.model)  # loading is outside the timing, as in vLLM's
with Store(Path(tempfile.mkdtemp(dir=work)) / "bench.db") as store:
    started = time.perf_counter()
    outcome = execute(store, plan, lambda: backend)
    elapsed = time.perf_counter() - started
    answers = store.completions(r.key for _, r in plan.items)
assert outcome.errors == 0, f"{outcome.errors} requests failed"
tokens = sum(c.prompt_tokens + c.output_tokens for c in answers.values())
peer = json.loads((work / "peer.json").read_text())
ours_rps, peer_rps = len(answers) / elapsed, float(peer["requests_per_second"])
print(f"vllm bench throughput: {peer_rps:8.2f} requests/s  "
      f"{float(peer['tokens_per_second']):10.1f} tokens/s  ({peer['num_requests']} requests)")
print(f"evalarena vllm:        {ours_rps:8.2f} requests/s  {tokens / elapsed:10.1f} tokens/s  "
      f"({len(answers)} requests, stored and scored)")
print(f"ratio evalarena / vllm = {ours_rps / peer_rps:.3f}  (target >= 0.95)")
EOF

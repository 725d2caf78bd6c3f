"""The paper's setting on a GPU, scaled to minutes, with per-phase timings (issue 19, item 5).

The built-in ``paper`` config (BoolQ, Movies, SciFact from ERASER with human rationales; finetune,
lamol, rational-block, rational-head, multitask; 9 epochs; a 1,024-token window) with a fresh
GPT-2-small-size model (12 blocks, 12 heads, d_model 768, random weights, the GPT-2 tokenizer),
cut down by :data:`SCALES` so that it ends within 8 minutes on one H200, and run through the
package's own pipeline. Under ``accelerate launch`` it runs unchanged on several GPUs (batches,
evaluation and pseudo-sample generation are split; only the main process writes).

    python benchmarks/gpu_paper.py --pack runs/gpu_data          # once, beside ../shared
    python benchmarks/gpu_paper.py --data-root runs/gpu_data/data [--json PATH]
    accelerate launch --num_processes 4 benchmarks/gpu_paper.py --data-root runs/gpu_data/data
    python benchmarks/gpu_paper.py --tiny [--methods lamol,rational-block]   # CPU, well under a minute

The GPU scale ("paper") keeps the model, the window, the 9 epochs, every method and the CCI
settings, and cuts: one task order of the six (boolq -> movies -> scifact), 80 / 50 / 100
train / val / test examples per task (CCI reads the 50 val examples), batch 16 instead of 8
(same learning rate), bf16 autocast for training, evaluation and generation (CCI stays fp32: its
percentile masks are exact), evaluation and generation batches of 64.

Estimate (one H200). Training is 1,440 example passes per epoch (finetune 160, lamol 192,
rational-block and rational-head 384 each with their probes, multitask 240, task 1 trained once
and shared; a later stage adds ceil(0.2 * 80) = 16 pseudo-samples), 12,960 over 9 epochs. An
example is two rows (QA and LM) padded to the batch's longest: 2,048 row tokens on BoolQ and
Movies batches of 16, 1,774 on SciFact (measured on the packed data with the GPT-2 tokenizer),
about 2,000 with pseudo-samples, at 6 * 124.4M FLOPs (forward and backward of every parameter,
the tied LM head included) + 3 * 37.7M (eager attention over 1,024 keys) = 0.86 GFLOP each:
22 PFLOP, 190 s at 120 TFLOP/s (a conservative 15 % of the 790 TFLOP/s bf16 matrix rate measured
on this machine kind). Generation: 6 replays (lamol, rational-block, rational-head at 2
transitions) of at most 1,023 steps at about 15 ms per step of ``generate``: 90 s at worst.
Evaluation: 14 passes over 300 test prompts, about 30 s; CCI: 4 x 50 examples, under 10 s; setup
and a 500 MB checkpoint per stage, about 40 s. About 360 s in all. ``--budget`` (450 s) is a
guard: a stage that would end past it (the longest stage so far taken as its length) is not
started, and the JSON says what finished.

Preparing the GPU machine. It gets this working tree, not ``../shared``, and nothing can be
downloaded there, so:

1. ``--pack runs/gpu_data`` (here) copies what the run reads into the ignored ``runs/gpu_data``:
   exactly the capped examples of the three sets (the same seeded subsets that the caps take
   from the full data, annotation lines and the documents they name, byte for byte; the copy is
   read back and checked) and the GPT-2 tokenizer (vocab.json, merges.txt): 7.3 MiB. The
   model is built there from the tokenizer and GPT-2's sizes (``--model DIR`` takes a local
   ``save_pretrained`` folder instead).
2. The machine's Python lacks pydantic: put its wheels in an ignored ``.whl`` folder (2.6 MB):
   ``pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
   --platform manylinux_2_17_x86_64 -d .whl pydantic==V pydantic-core==V annotated-types==V
   typing-inspection==V``, with the versions ``pip freeze`` shows here (pydantic pins its core).
3. There, ``bash benchmarks/gpu_paper.sh --json $OUT/paper.json`` with ``.whl`` and
   ``runs/gpu_data`` carried: it installs the wheels, puts the three packages on the path and
   runs this script (``NPROC=N`` launches N processes).

The JSON (``benchmarks/results/gpu_paper/<mode>-<device>-x<processes>.json`` unless ``--json``;
rewritten after every run, so a killed job leaves its last state) holds the seconds per phase
(setup, training with the probes, pseudo-sample generation, CCI, evaluation, other: checkpoints
and baselines) overall and per run, training and generation tokens/s, training TFLOP/s by
6 * parameters * tokens, peak device memory per process (``torch.cuda.max_memory_allocated``; on
CPU the peak resident set), the device, process count, precision, package versions, the data
sizes and every run's score matrix (a run cut by the budget: its finished rows).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import re
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rationale_commons.runtime import machine_info

from common import SHARED_DATA, command_line, result_path, write_result


@dataclass(frozen=True)
class Scale:
    """How the paper's config is cut down; everything not named here is ``paper.toml``'s."""

    orders: int  # the first task orders of the config's six
    max_train: int
    max_val: int  # CCI reads all of them (the paper: up to 200)
    max_test: int
    epochs: int
    batch_size: int
    eval_batch_size: int
    gen_batch_size: int
    cci_batch_size: int
    max_length: int
    model: dict[str, int] = field(default_factory=dict)  # GPT2Config sizes
    precision: str = "auto"
    budget: float = 450.0  # seconds from the run's start (after the imports)


SCALES = {
    "paper": Scale(orders=1, max_train=80, max_val=50, max_test=100, epochs=9, batch_size=16, eval_batch_size=64,
                   gen_batch_size=64, cci_batch_size=8, max_length=1024,
                   model={"n_layer": 12, "n_head": 12, "n_embd": 768}, precision="bf16"),
    # a CPU smoke run: a 2-block model, a handful of examples, 1 epoch, a 96-token window
    "tiny": Scale(orders=1, max_train=3, max_val=2, max_test=2, epochs=1, batch_size=4, eval_batch_size=8,
                  gen_batch_size=8, cci_batch_size=2, max_length=96,
                  model={"n_layer": 2, "n_head": 2, "n_embd": 32}, budget=120.0),
}

log = logging.getLogger("rational_lamol")


# --------------------------------------------------------------------------------------------
# The config and the model
# --------------------------------------------------------------------------------------------
def paper_config(scale: Scale, data_root: Path, model_source: str, methods: list[str] | None = None):
    """``paper.toml`` with the scale applied and its data read from ``data_root/eraser/<task>``."""
    from rational_lamol.config import builtin_config_path, load_config, parse_config

    base = load_config(builtin_config_path("paper"))
    data = base.model_dump()
    data["orders"] = base.resolved_orders()[: scale.orders]
    data["methods"] = methods or data["methods"]
    data["model"] = {"source": model_source, "max_length": scale.max_length}
    for task in data["tasks"]:
        task.update(data=str(data_root / "eraser" / task["name"]), max_train=scale.max_train,
                    max_val=scale.max_val, max_test=scale.max_test)
    data["training"].update(epochs=scale.epochs, batch_size=scale.batch_size, eval_batch_size=scale.eval_batch_size,
                            gen_batch_size=scale.gen_batch_size, precision=scale.precision)
    cci = {"n_examples": scale.max_val, "cci_batch_size": scale.cci_batch_size}
    data["method_options"] = {"rational-block": cci, "rational-head": cci}
    return parse_config(data, source="benchmarks/gpu_paper.py")


def fresh_model(folder: Path, tokenizer_dir: Path, scale: Scale, seed: int) -> None:
    """A randomly initialised GPT-2 of the scale's size with the GPT-2 tokenizer, saved to ``folder``."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=scale.max_length, **scale.model))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def parameter_count(model_dir: Path) -> int:
    """Parameters of a saved model (tied weights once), counted on the meta device."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(model_dir)))
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# --pack: what the run reads, for a machine without ../shared
# --------------------------------------------------------------------------------------------
def pack(dest: Path, data_root: Path, tokenizer_dir: Path, scale: Scale) -> None:
    """Copy the capped examples of the three sets (annotation lines and the documents they name,
    unchanged) and the tokenizer files into ``dest/data/eraser`` and ``dest/models``; check that
    the copy loads as the same examples."""
    from rational_lamol.tasks import load_task
    from rationale_commons.records import Annotation

    config = paper_config(scale, data_root, "gpt2-scratch")
    packed = paper_config(scale, dest / "data", "gpt2-scratch")
    for task, packed_task in zip(config.tasks, packed.tasks, strict=True):
        src, out = Path(task.data), Path(packed_task.data)
        if not (src / "docs").is_dir():
            raise SystemExit(f"{src}: expected an ERASER folder with docs/")
        shutil.rmtree(out, ignore_errors=True)
        (out / "docs").mkdir(parents=True)
        splits = load_task(task, data_seed=config.data_seed).splits
        for split, examples in splits.items():
            keep = {ex.id for ex in examples}
            rows = [(line, Annotation.model_validate_json(line))
                    for line in (src / f"{split}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
            rows = [(line, ann) for line, ann in rows if ann.annotation_id in keep]
            (out / f"{split}.jsonl").write_text("".join(f"{line}\n" for line, _ in rows), encoding="utf-8")
            for docid in {docid for _, ann in rows for docid in ann.document_ids()}:
                shutil.copyfile(src / "docs" / docid, out / "docs" / docid)
        if load_task(packed_task, data_seed=packed.data_seed).splits != splits:
            raise SystemExit(f"{out}: the packed copy does not load as the capped examples of {src}")
    tok_out = dest / "models" / "gpt2-tokenizer"
    tok_out.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(tokenizer_dir / name, tok_out / name)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"packed {', '.join(t.name for t in config.tasks)} ({scale.max_train}/{scale.max_val}/{scale.max_test} examples) and the "
          f"tokenizer into {dest}: {size / 2**20:.1f} MiB")


# --------------------------------------------------------------------------------------------
# What the JSON reports
# --------------------------------------------------------------------------------------------
PHASES = ("training", "generation", "cci", "eval")


def stage_phases(stages: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds per phase and tokens (training, generation) of finished stages (``progress.json``
    records). A task-1 model shared from another method's run was loaded, not trained: not counted."""
    seconds = dict.fromkeys(PHASES, 0.0)
    tokens = {"training": 0, "generation": 0}
    for stage in stages:
        if "task1_shared_from" not in stage:
            for fit in [*stage.get("train", []), *([stage["probe_train"]] if "probe_train" in stage else [])]:
                seconds["training"] += fit["seconds"]
                tokens["training"] += fit["tokens"]
        if "pseudo" in stage:
            seconds["generation"] += stage["pseudo"]["seconds"]
            tokens["generation"] += stage["pseudo"]["generated_tokens"]
        seconds["cci"] += stage.get("cci_seconds", 0.0)
        seconds["eval"] += stage.get("eval_seconds", 0.0)
    return seconds, tokens


def run_entry(run_dir: Path, method: str, seed: int, order: list[str], record: dict | None) -> dict[str, Any]:
    """One run for the JSON: its score matrix (the finished rows when it was cut) and phases."""
    progress = run_dir / "progress.json"
    stages = json.loads(progress.read_text())["stages"] if progress.is_file() else []
    seconds, tokens = stage_phases(stages)
    entry = {"method": method, "seed": seed, "order": order, "complete": record is not None,
             "score_matrix": [s["scores"] for s in stages], "seconds": _rounded(seconds), "tokens": tokens,
             "stage_seconds": [round(s["seconds"], 2) for s in stages]}
    if record is not None:
        entry.update(baseline=record["baseline"], metrics=record["metrics"])
    return entry


def peak_memory(device: torch.device) -> dict[str, Any]:
    """This process's peak memory: allocated on its GPU, else the peak resident set."""
    if device.type == "cuda":
        return {"device": str(device), "kind": "torch.cuda.max_memory_allocated",
                "bytes": torch.cuda.max_memory_allocated(device),
                "reserved_bytes": torch.cuda.max_memory_reserved(device)}
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"device": str(device), "kind": "peak resident set (ru_maxrss)", "bytes": rss_kib * 1024}


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in values.items()}


def summary(args, scale: Scale, session, runs: list[dict], *, t0: float, ready: float, status: str,
            memory: list[dict], n_params: int, stopped_before: dict | None) -> dict[str, Any]:
    acc = session.accelerator
    total = time.perf_counter() - t0
    seconds = dict.fromkeys(PHASES, 0.0)
    tokens = {"training": 0, "generation": 0}
    for run in runs:
        for k in PHASES:
            seconds[k] += run["seconds"][k]
        for k in tokens:
            tokens[k] += run["tokens"][k]
    seconds = {"setup": ready - t0, **seconds}
    seconds["other"] = total - sum(seconds.values())
    rate = {k: round(tokens[k] / seconds[k], 1) if seconds[k] else None for k in tokens}
    config = session.config
    return {
        "benchmark": "gpu_paper", "command": command_line(), "mode": "tiny" if args.tiny else "paper",
        "status": status, "total_seconds": round(total, 1), "budget_seconds": args.budget,
        "seconds": _rounded(seconds), "tokens": tokens, "tokens_per_second": rate,
        "training_tflops_per_second": (float(f"{6 * n_params * tokens['training'] / seconds['training'] / 1e12:.3g}")
                                       if seconds["training"] else None),
        "peak_memory": memory,
        "device": {"name": device_name(acc.device), "world_size": acc.num_processes,
                   "precision": acc.mixed_precision, "cuda": torch.version.cuda},
        "machine": machine_info(str(acc.device)),
        "environment": session.environment,
        "scale": dataclasses.asdict(scale) | {"budget": args.budget},
        "config": {"methods": config.methods, "orders": config.resolved_orders(), "seeds": config.seeds,
                   "training": config.training.model_dump(), "method_options": config.method_options},
        "model": {"source": config.model.source, "parameters": n_params},
        "data": {"root": str(args.data_root), **{name: {split: len(exs) for split, exs in task.splits.items()}
                                                  for name, task in session.tasks.items()}},
        "run_dir": str(session.out_dir),
        "runs": runs,
        "stopped_before": stopped_before,
    }


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
def shared_value(value: Any) -> Any:
    """The main process's ``value`` in every process (a run dir named by the clock, say)."""
    from accelerate.utils import broadcast_object_list

    from rational_lamol.trainer import process_state

    return broadcast_object_list([value])[0] if process_state().num_processes > 1 else value


def run(args) -> None:
    from rational_lamol.cli import setup_logging
    from rational_lamol.pipeline import DeadlineReached, Session
    from rational_lamol.results import write_results
    from rational_lamol.trainer import end_process_group, process_state
    from rationale_commons.runtime import lock_run_dir

    t0, deadline = time.perf_counter(), time.monotonic() + args.budget
    state = process_state()
    main = state.is_main_process
    mode = "tiny" if args.tiny else "paper"
    scale = SCALES[mode]
    if not args.tiny and state.device.type != "cuda":
        raise SystemExit("the paper scale needs a CUDA GPU (it would take hours here); --tiny runs on CPU")
    out_dir = Path(shared_value(str(args.out or Path("runs") / f"gpu_paper-{mode}-{time.strftime('%Y%m%d-%H%M%S')}")))
    if state.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(state.device)
    setup_logging(out_dir, main_process=main)
    model_dir = args.model
    if model_dir is None:
        model_dir = out_dir / "initial_model"
        if main:
            fresh_model(model_dir, args.tokenizer, scale, seed=0)
        state.wait_for_everyone()
    config = paper_config(scale, args.data_root, str(Path(model_dir).resolve()), args.methods)
    n_params = parameter_count(Path(model_dir))
    json_path = args.json

    runs: list[dict] = []
    records, timings = [], []
    stopped_before = None
    with lock_run_dir(out_dir) if main else contextlib.nullcontext():
        session = Session(config, out_dir, deadline=deadline)
        ready = time.perf_counter()
        if json_path is None:
            slug = re.sub(r"[^a-z0-9]+", "-", device_name(session.accelerator.device).lower()).strip("-")
            json_path = result_path("gpu_paper", f"{mode}-{slug}-x{session.accelerator.num_processes}")

        def report(status: str, memory: list[dict]) -> None:
            write_result(json_path, summary(args, scale, session, runs, t0=t0, ready=ready, status=status,
                                            memory=memory, n_params=n_params, stopped_before=stopped_before))

        try:
            for order in config.resolved_orders():
                for seed in config.seeds:
                    for name, method in session.methods.items():
                        record, timing = session.run_one(method, seed, order)
                        if main:
                            records.append(record)
                            timings.append(timing)
                            write_results(out_dir, records, config, timings)
                            runs.append(run_entry(session.run_dir_for(method, seed, order), name, seed, order, record))
                            report("running", [peak_memory(state.device)])
        except DeadlineReached as stop:
            if main:
                cut = run_entry(stop.run_dir, stop.method, stop.seed, stop.order, None)
                if cut["score_matrix"]:
                    runs.append(cut)
                stopped_before = {"method": stop.method, "seed": stop.seed, "order": stop.order,
                                  "stage": len(cut["score_matrix"]) + 1}
                log.info("budget of %.0f s: stopped before %s stage %d", args.budget, stop.method,
                         stopped_before["stage"])
        from accelerate.utils import gather_object

        memory = gather_object([peak_memory(state.device)])  # every process's, in process order
        if main:
            report("complete" if stopped_before is None else "stopped at the budget", memory)
    end_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the CPU smoke scale instead of the GPU one")
    parser.add_argument("--data-root", type=Path, default=SHARED_DATA,
                        help="folder holding eraser/{boolq,movies,scifact} (default: ../shared/data)")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="GPT-2 tokenizer folder, vocab.json + merges.txt (default: DATA_ROOT/../models/gpt2-tokenizer)")
    parser.add_argument("--model", type=Path, default=None, help="a local save_pretrained model folder instead of a fresh GPT-2")
    parser.add_argument("--methods", type=lambda s: [m.strip() for m in s.split(",") if m.strip()], default=None,
                        help="comma-separated methods instead of the config's five")
    parser.add_argument("--budget", type=float, default=None, help="seconds (default: the scale's; 450 on a GPU)")
    parser.add_argument("--out", type=Path, default=None, help="run dir (default: runs/gpu_paper-<mode>-<time>)")
    parser.add_argument("--json", type=Path, default=None,
                        help="result file (default: benchmarks/results/gpu_paper/<mode>-<device>-x<processes>.json)")
    parser.add_argument("--pack", type=Path, default=None, metavar="DEST",
                        help="copy the scale's capped data and the tokenizer into DEST, then stop")
    args = parser.parse_args()
    scale = SCALES["tiny" if args.tiny else "paper"]
    args.budget = args.budget if args.budget is not None else scale.budget
    args.tokenizer = args.tokenizer or args.data_root.parent / "models" / "gpt2-tokenizer"
    if not (args.tokenizer / "vocab.json").is_file() and args.model is None:
        sys.exit(f"no GPT-2 tokenizer (vocab.json, merges.txt) in {args.tokenizer}; pass --tokenizer or --model")
    if args.pack is not None:
        pack(args.pack, args.data_root, args.tokenizer, scale)
        return
    run(args)


if __name__ == "__main__":
    main()

"""Benchmark: can a model that has learned one task replay it? For each config (one task per
order, as in ``benchmarks/protocols/design_paper_cpu/``): run it (``rational-lamol run``, resumable),
then draw ``--samples`` pseudo-samples from every task-1 model exactly as LAMOL's replay draws them
(the config's generation token, top-k and temperature) and judge each one
(:mod:`rational_lamol.pseudo_quality`). Reports, per config and task, the task's test score right
after learning it, its majority-class score, and the share of well-formed pseudo-samples with
the verdicts and a few samples verbatim.

    python benchmarks/bench_replay_quality.py --jobs 2 --out runs/design-paper-cpu \\
        benchmarks/protocols/design_paper_cpu/lr1e-4.toml benchmarks/protocols/design_paper_cpu/lr3e-4.toml \\
        benchmarks/protocols/design_paper_cpu/lr1e-3.toml

Writes ``benchmarks/results/replay_quality/<name>.json`` (``--name``, default ``design_paper_cpu``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import command_line, result_path, write_result

#: samples kept verbatim per (config, task)
VERBATIM = 5


def run_config(config: Path, out: Path, env: dict[str, str]) -> None:
    """``rational-lamol run`` of one config into ``out`` (resumed when it exists)."""
    cmd = ["rational-lamol", "run", "--config", str(config), "--out", str(out)]
    if (out / "config.json").exists():
        cmd.append("--resume")
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode:
        raise SystemExit(f"{config}: the run failed; see {out / 'run.log'}")


def judge_replay(config_path: Path, out: Path, n_samples: int) -> dict:
    """Pseudo-samples of every task-1 model of a finished run dir, judged; with the task's score."""
    import json

    import torch

    from rational_lamol.config import load_config
    from rational_lamol.modeling import load_saved
    from rational_lamol.pseudo import generate_pseudo_samples
    from rational_lamol.pseudo_quality import sample_profile
    from rational_lamol.task_baselines import task_baselines
    from rational_lamol.tasks import load_tasks, special_ids

    torch.set_num_threads(1)
    config = load_config(config_path)
    tasks = load_tasks(config)
    names = [t.name for t in config.tasks]
    baselines = task_baselines(tasks)
    results = json.loads((out / "results.json").read_text())
    rows = []
    for run in results["runs"]:
        (task,), seed = run["order"], run["seed"]
        (folder,) = sorted((out / "_shared" / "task1").glob(f"{task}_seed{seed}_*"))
        model, tokenizer = load_saved(folder / "model")
        ids = special_ids(tokenizer, names, shared_gen=config.training.gen_token == "shared")
        tc = config.training
        _, report = generate_pseudo_samples(
            model, tokenizer, {task: n_samples}, ids, profiles={task: sample_profile(tasks[task])},
            max_length=config.model.max_length - 1, top_k=tc.top_k, temperature=tc.temperature,
            batch_size=tc.gen_batch_size, seed=seed, keep_samples=VERBATIM,
        )
        summary = report.as_dict()
        label = next(iter(summary["quality"]["by_task"]))
        quality = summary["quality"]["by_task"][label]
        rows.append({"task": task, "seed": seed, "score": run["score_matrix"][0][0],
                     "majority": baselines[task]["majority"], "tfidf_logreg": baselines[task]["tfidf_logreg"],
                     "final_loss": run["stages"][0]["train"][0]["final_loss"],
                     "well_formed_share": quality["well_formed_share"], "verdicts": quality["verdicts"],
                     "generated": quality["generated"], "samples": summary["samples"][label]})
        print(f"{config.name} {task} seed {seed}: score {rows[-1]['score']:.1f} (majority {rows[-1]['majority']:.1f}), "
              f"well-formed {quality['well_formed_share']:.0%} of {quality['generated']}")
    return {"config": str(config_path), "name": config.name, "lr": config.training.lr,
            "epochs": config.training.epochs, "rows": rows,
            "well_formed_share": round(sum(r["well_formed_share"] * r["generated"] for r in rows)
                                       / max(1, sum(r["generated"] for r in rows)), 4),
            "score_minus_majority": round(sum(r["score"] - r["majority"] for r in rows) / max(1, len(rows)), 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/replay-quality"))
    parser.add_argument("--samples", type=int, default=30, help="pseudo-samples drawn per task")
    parser.add_argument("--jobs", type=int, default=1, help="configs run at once (one thread each when > 1)")
    parser.add_argument("--name", default="design_paper_cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    env = dict(os.environ, **({"OMP_NUM_THREADS": "1"} if args.jobs > 1 else {}))

    def one(config: Path) -> dict:
        out = args.out / config.stem
        run_config(config, out, env)
        return judge_replay(config, out, args.samples)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        variants = list(pool.map(one, args.configs))
    result = {"benchmark": "replay quality: a task's score after learning it alone, and the share of "
                           "well-formed pseudo-samples its model generates",
              "command": command_line(), "samples_per_task": args.samples, "variants": variants,
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_result(args.json or result_path("replay_quality", args.name), result)
    return result


if __name__ == "__main__":
    main()

"""Benchmark: can a model that has learned one task replay it? For each config and each of its
tasks: learn that task alone as task 1 (the config's model and training, ``lamol``, its seeds;
resumable run dirs), then draw ``--samples`` pseudo-samples from the model exactly as LAMOL's replay
draws them (the config's generation token, top-k and temperature) and judge each one
(:mod:`rational_lamol.pseudo_quality`). Reports, per config and task, the test score right after
learning it, the task's label baselines, and the share of well-formed pseudo-samples with the
verdicts and a few samples verbatim.

    python benchmarks/bench_replay_quality.py --jobs 2 --out runs/design-paper-cpu \\
        benchmarks/protocols/design_paper_cpu/lr1e-4.toml benchmarks/protocols/design_paper_cpu/lr3e-4.toml \\
        benchmarks/protocols/design_paper_cpu/lr1e-3.toml

Writes ``benchmarks/results/replay_quality/<name>.json`` (``--name``, default ``design_paper_cpu``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import command_line, result_path, write_result

#: samples kept verbatim per (config, task)
VERBATIM = 5


def learn_and_replay(config_path: Path, task: str, out: Path, n_samples: int) -> dict:
    """Learn ``task`` alone (a one-task copy of the config, run dir ``out``, resumed when it
    exists), then judge ``n_samples`` pseudo-samples of each seed's model and return the rows."""
    from rational_lamol.cli import setup_logging
    from rational_lamol.config import load_config, parse_config
    from rational_lamol.modeling import load_saved
    from rational_lamol.pipeline import run_experiment
    from rational_lamol.pseudo import generate_pseudo_samples
    from rational_lamol.pseudo_quality import sample_profile
    from rational_lamol.task_baselines import task_baselines
    from rational_lamol.tasks import load_tasks, special_ids

    data = load_config(config_path).model_dump()
    data.update(name=f"{data['name']}-{task}", methods=["lamol"], orders=[[task]],
                tasks=[t for t in data["tasks"] if t["name"] == task])
    config = parse_config(data, source=f"{config_path} ({task} alone)")
    setup_logging(out)
    results = run_experiment(config, out, resume=(out / "config.json").exists())
    tasks = load_tasks(config)
    baseline = task_baselines(tasks)[task]
    tc = config.training
    rows = []
    for run in results["runs"]:
        seed = run["seed"]
        (folder,) = sorted((out / "_shared" / "task1").glob(f"{task}_seed{seed}_*"))
        model, tokenizer = load_saved(folder / "model")
        ids = special_ids(tokenizer, [task], shared_gen=tc.gen_token == "shared")
        _, report = generate_pseudo_samples(
            model, tokenizer, {task: n_samples}, ids, profiles={task: sample_profile(tasks[task])},
            max_length=config.model.max_length - 1, top_k=tc.top_k, temperature=tc.temperature,
            batch_size=tc.gen_batch_size, seed=seed, keep_samples=VERBATIM,
        )
        summary = report.as_dict()
        label = next(iter(summary["quality"]["by_task"]))
        quality = summary["quality"]["by_task"][label]
        rows.append({"task": task, "seed": seed, "score": run["score_matrix"][0][0],
                     "majority": baseline["majority"], "tfidf_logreg": baseline["tfidf_logreg"],
                     "final_loss": run["stages"][0]["train"][0]["final_loss"],
                     "well_formed_share": quality["well_formed_share"], "verdicts": quality["verdicts"],
                     "generated": quality["generated"], "samples": summary["samples"][label]})
        print(f"{config_path.stem} {task} seed {seed}: score {rows[-1]['score']:.1f} "
              f"(majority {rows[-1]['majority']:.1f}), well-formed {quality['well_formed_share']:.0%} "
              f"of {quality['generated']}", flush=True)
    return {"config": str(config_path), "lr": tc.lr, "epochs": tc.epochs, "rows": rows}


def summarize(variant: list[dict]) -> dict:
    """One config's rows: W, the pooled well-formed share, and A, the mean score − majority."""
    rows = [row for part in variant for row in part["rows"]]
    generated = sum(r["generated"] for r in rows)
    return {"config": variant[0]["config"], "lr": variant[0]["lr"], "epochs": variant[0]["epochs"],
            "well_formed_share": round(sum(r["well_formed_share"] * r["generated"] for r in rows) / max(1, generated), 4),
            "score_minus_majority": round(sum(r["score"] - r["majority"] for r in rows) / max(1, len(rows)), 2),
            "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/replay-quality"))
    parser.add_argument("--samples", type=int, default=30, help="pseudo-samples drawn per task")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each with its config's threads)")
    parser.add_argument("--name", default="design_paper_cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    from rational_lamol.config import load_config

    jobs = [(config, task.name) for config in args.configs for task in load_config(config).tasks]
    # spawn: each run is its own process with its own thread setting (no forked torch state)
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(learn_and_replay, config, task, args.out / config.stem / task, args.samples)
                   for config, task in jobs]
        parts = [f.result() for f in futures]
    variants = [summarize([p for p, (c, _) in zip(parts, jobs, strict=True) if c == config]) for config in args.configs]
    for v in variants:
        print(f"{Path(v['config']).stem}: well-formed {v['well_formed_share']:.0%}, "
              f"score - majority {v['score_minus_majority']:+.1f}")
    result = {"benchmark": "replay quality: a task's score right after learning it alone, and the share of "
                           "well-formed pseudo-samples its model generates",
              "command": command_line(), "samples_per_task": args.samples, "variants": variants,
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_result(args.json or result_path("replay_quality", args.name), result)
    return result


if __name__ == "__main__":
    main()

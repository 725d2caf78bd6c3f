"""Why do CCI's block scores tie? (issue 16: ties are not the exception on the demo.)

Runs block-level CCI between two saved models on a task's examples (as ``rational-lamol cci``
does) and looks at every example whose lowest block score is shared by several blocks: is the tied
value 1.0 (the new model still has a row matching the old one exactly: saturation), or a small-set
ratio such as 1/2 or 5/9 (top-20% masks of a few dozen tokens can only take a few IoU values)?

    python benchmarks/bench_cci_ties.py --config benchmarks/protocols/demo.toml --task topic \\
        --old RUN/.../rational-block/1_topic/model --new RUN/.../rational-block/2_pair/model \\
        [--rationales RUN/rationales/topic.jsonl] [--n 60] [--json OUT]

The probe CCI reads in a run is thrown away; a later stage's model of the same run (trained on the
next task from the same start) stands in for it here, so this explains the kind of ties, not the
protocol's exact counts (those are in every ``cci.json``: ``n_tied``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from rational_lamol import cci
from rational_lamol.cci_saved import cci_between_saved
from rational_lamol.config import load_config

from common import command_line, result_path, write_result


def tie_profile(scores: torch.Tensor) -> dict:
    """Per example ``(N, L)`` block scores: how many examples tie at their minimum, and at what value."""
    lowest = scores.min(dim=1).values
    tied = (scores == lowest[:, None]).sum(dim=1) > 1
    values = Counter(round(float(v), 3) for v in lowest[tied])
    return {
        "examples": len(scores), "tied": int(tied.sum()),
        "tied_at_1": int((lowest[tied] == 1.0).sum()),
        "tied_values": {str(k): v for k, v in values.most_common()},
        "share_of_scores_equal_to_1": round(float((scores == 1.0).double().mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--config", required=True, help="the run's experiment config (its task settings)")
    parser.add_argument("--task", required=True, help="the task CCI reads (the old task)")
    parser.add_argument("--rationales", default=None, help="ERASER annotation JSONL (default: the data's own)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--json", type=Path, default=result_path("cci_ties", "ties"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    captured: list[torch.Tensor] = []
    vote_blocks = cci.vote_blocks

    def keep_scores(scores, tie_seed=0):  # the per-example scores CCI votes with
        captured.append(cci._stack(scores).clone())
        return vote_blocks(scores, tie_seed)

    cci.vote_blocks = keep_scores
    config = load_config(args.config)
    task = next(t for t in config.tasks if t.name == args.task).model_copy(update={"rationales": args.rationales})
    result = cci_between_saved(args.old, args.new, task, split=args.split, level="block", n=args.n)
    profile = tie_profile(captured[-1])
    write_result(args.json, {"benchmark": "cci_ties", "command": command_line(), "chosen": result["chosen"],
                             "votes": result["votes"], "n_tied": result["n_tied"], **profile})
    print(json.dumps(profile))


if __name__ == "__main__":
    main()

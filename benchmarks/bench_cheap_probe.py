"""A cheap probe (issue 20 item 3): how often does a probe stopped early choose what the full probe chooses?

Reads the run dirs of ``benchmarks/protocols/cheap_probe.toml`` (the evidence protocol for the two
rational methods, with CCI run along every probe: ``probe_curve``), run and resumed with

    python benchmarks/bench_main_job.py --config benchmarks/protocols/cheap_probe.toml --seeds 0,1,2,3,4 \\
        --jobs 2 --out runs/cheap-probe --resume --archive benchmarks/results/cheap_probe/runs \\
        --json benchmarks/results/cheap_probe/main_job.json
    python benchmarks/bench_cheap_probe.py --runs benchmarks/results/cheap_probe/runs

and reports, per level and share of the probe's steps: the transitions where the choice there
equals the full probe's (95% Wilson interval), the mean Jaccard index of the two choices, and the
pipeline's wall time relative to lamol's had the probe stopped there. The lamol-equivalent time of
a run is its own wall time less the probe and CCI (what is left is lamol's work: the same
pseudo-samples, retrain steps and evaluation), so both sides come from one process on one machine.
Every final choice is checked against the evidence protocol's archived ``cci.json`` (``--protocol``):
the curve must change nothing. The rule for the default, fixed before the run: the smallest share
whose agreement is at least 90% at both levels and whose cost is at most 1.3x lamol's; none
qualifying leaves the full probe the default.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from common import command_line, result_path, write_result

LEVELS = {"rational-block": "block", "rational-head": "head"}
AGREEMENT_GOAL, COST_GOAL = 0.9, 1.3


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def cost_ratio(timing: dict, share: float) -> float:
    """Wall time of a rational run with its probes stopped at ``share``, over its lamol-equivalent
    time (its wall time less the probes, the curve's CCI passes and the CCI)."""
    stages = timing["stages"][1:]
    curve = sum(s.get("probe_curve", {}).get("seconds", 0.0) for s in stages)
    probe = sum(s["probe_train"]["seconds"] for s in stages) - curve  # the curve ran inside the probe
    cci = sum(s.get("cci_seconds", 0.0) for s in stages)
    wall = timing["wall_seconds"] - curve
    return (wall - (1 - share) * probe) / (wall - probe - cci)


def collect(runs: Path, protocol: Path | None) -> tuple[dict, dict, dict]:
    """Per (level, share): the agreement of each transition; per level and share: cost ratios; the
    check of every final choice against the protocol's."""
    agreement: dict[tuple[str, float], list[dict]] = defaultdict(list)
    costs: dict[tuple[str, float], list[float]] = defaultdict(list)
    check = {"compared": 0, "equal": 0, "missing": 0, "differing": []}
    for cci_path in sorted(runs.glob("seed*/*/seed*/rational-*/cci.json")):
        method = cci_path.parent.name
        level = LEVELS[method]
        entries = json.loads(cci_path.read_text())
        timing = json.loads((cci_path.parent / "timing.json").read_text())
        reference = protocol / cci_path.relative_to(runs) if protocol else None
        expected = json.loads(reference.read_text()) if reference and reference.is_file() else None
        shares = sorted({p["share"] for e in entries for p in e.get("probe_curve", [])}) + [1.0]
        for share in shares:
            costs[(level, share)].append(cost_ratio(timing, share))
        for k, entry in enumerate(entries):
            for point in entry.get("probe_curve", []):
                agreement[(level, point["share"])].append(
                    {"same": point["same"], "jaccard": point["jaccard"], "run": str(cci_path.parent.relative_to(runs)),
                     "transition": f"{entry['from_task']}->{entry['to_task']}"})
            if expected is None:
                check["missing"] += 1
                continue
            check["compared"] += 1
            if expected[k]["chosen"] == entry["chosen"]:
                check["equal"] += 1
            else:
                check["differing"].append(f"{cci_path.parent.relative_to(runs)} {entry['from_task']}->{entry['to_task']}")
    return agreement, costs, check


def summarize(agreement: dict, costs: dict) -> dict:
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for (level, share), points in sorted(agreement.items()):
        same = sum(p["same"] for p in points)
        lo, hi = wilson(same, len(points))
        ratios = costs.get((level, share), [])
        table[level][str(share)] = {
            "transitions": len(points), "same_choice": same, "same_rate": round(same / len(points), 4),
            "same_rate_95ci": [round(lo, 4), round(hi, 4)],
            "mean_jaccard": round(statistics.fmean(p["jaccard"] for p in points), 4),
            "cost_vs_lamol_mean": round(statistics.fmean(ratios), 3) if ratios else None,
        }
    for level in table:
        full = costs.get((level, 1.0), [])
        table[level]["1.0"] = {"same_rate": 1.0, "cost_vs_lamol_mean": round(statistics.fmean(full), 3) if full else None}
    return dict(table)


def default_share(table: dict) -> float:
    """The rule fixed before the run: the smallest share meeting both goals at every level, else 1.0."""
    shares = sorted({float(s) for rows in table.values() for s in rows})
    for share in shares:
        rows = [table[level].get(str(share)) for level in table]
        if all(r and r["same_rate"] >= AGREEMENT_GOAL and (r["cost_vs_lamol_mean"] or math.inf) <= COST_GOAL
               for r in rows):
            return share
    return 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("benchmarks/results/cheap_probe/runs"),
                        help="bench_main_job's --out or --archive of cheap_probe.toml (seed*/ folders)")
    parser.add_argument("--protocol", type=Path, default=Path("benchmarks/results/main_job/protocol_demo_runs"),
                        help="the evidence protocol's archive, whose final choices the runs must equal")
    parser.add_argument("--json", type=Path, default=result_path("cheap_probe", "cheap_probe"))
    args = parser.parse_args()
    agreement, costs, check = collect(args.runs, args.protocol if args.protocol.is_dir() else None)
    if not agreement:
        raise SystemExit(f"no cci.json with a probe curve under {args.runs}")
    table = summarize(agreement, costs)
    runs = len({p["run"] for points in agreement.values() for p in points})
    result = {
        "benchmark": "cheap_probe", "command": command_line(), "protocol": "benchmarks/protocols/cheap_probe.toml",
        "runs": runs, "complete": runs == 5 * 6 * 2,
        "goals": {"same_rate": AGREEMENT_GOAL, "cost_vs_lamol": COST_GOAL},
        "table": table, "default_share_by_the_rule": default_share(table),
        "final_choices_vs_protocol": check,
        "definitions": {
            "same_rate": "share of transitions whose choice at this share of the probe's steps equals the full probe's "
                         "(block: the same block; head: the same set of heads)",
            "cost_vs_lamol_mean": "mean over runs of (wall time with the probe stopped at this share) / (the run's "
                                  "wall time less probe and CCI), one process, one machine",
        },
    }
    write_result(args.json, result)
    for level, rows in table.items():
        for share, row in rows.items():
            print(level, share, row)
    print("default share by the rule:", result["default_share_by_the_rule"], "| final choices vs protocol:",
          {k: v for k, v in check.items() if k != "differing"})


if __name__ == "__main__":
    main()

"""The main job's measurement: the embedded default over several seeds, as mean ± std per method.

Runs ``rational-lamol run --seeds S --out OUT`` (the built-in default config unless ``--config``),
then summarizes the run dir with ``rational_lamol.report.summarize`` (ACC, BWT, FWT, forgetting,
mean ± std over seeds; what was frozen) and writes it, with the wall time and the exact command,
to ``benchmarks/results/main_job.json``. Resumable: ``--resume`` continues a killed run dir.

    python benchmarks/bench_main_job.py --seeds 0,1,2 --out runs/main-job-3seeds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--config", default=None, help="experiment TOML (default: the built-in default)")
    parser.add_argument("--out", type=Path, default=Path("runs/main-job"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "main_job.json")
    args = parser.parse_args()

    cmd = ["rational-lamol", "run", "--seeds", args.seeds, "--out", str(args.out)]
    if args.config:
        cmd += ["--config", args.config]
    if args.resume:
        cmd.append("--resume")
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start

    from rational_lamol.report import load_runs, summarize

    runs = load_runs([args.out])
    rows = summarize(runs)
    result = {
        "command": " ".join(cmd),
        "wall_seconds": round(wall, 1),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "summary": rows,
        "per_run": [{"method": r.method, "seed": r.record["seed"], "metrics": r.record["metrics"],
                     "score_matrix": r.record["score_matrix"], "frozen": r.cci[-1]["frozen"] if r.cci else None}
                    for r in runs],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"written {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()

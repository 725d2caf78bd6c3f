"""The main job's measurement: the embedded default over several seeds, as mean ± std per method.

Runs ``rational-lamol run --seeds S --out OUT/seedS`` once per seed (the built-in default config
unless ``--config``; ``--jobs`` seeds at a time, one CPU thread each when more than one), then
summarizes the run dirs with ``rational_lamol.report.summarize`` (ACC, BWT, FWT, forgetting,
mean ± std over seeds; what was frozen) and writes it, with the wall time and the exact command,
to ``benchmarks/results/main_job/<config name, or default>.json``. Resumable: ``--resume`` continues a killed run dir.

    python benchmarks/bench_main_job.py --seeds 0,1,2 --jobs 2 --out runs/main-job
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import command_line, result_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--config", default=None, help="experiment TOML (default: the built-in default)")
    parser.add_argument("--out", type=Path, default=Path("runs/main-job"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once")
    parser.add_argument("--json", type=Path, default=None,
                        help="default: benchmarks/results/main_job/<config name, or default>.json")
    args = parser.parse_args()

    seeds = [s.strip() for s in args.seeds.split(",") if s.strip()]
    commands = []
    for seed in seeds:
        cmd = ["rational-lamol", "run", "--seeds", seed, "--out", str(args.out / f"seed{seed}")]
        commands.append(cmd + (["--config", args.config] if args.config else []) + (["--resume"] if args.resume else []))
    env = dict(os.environ, **({"OMP_NUM_THREADS": "1"} if args.jobs > 1 else {}))
    start = time.perf_counter()

    def run_seed(cmd: list[str]) -> int:
        return subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # a freed slot takes the next seed
        if any(pool.map(run_seed, commands)):
            sys.exit("a seed's run failed; see its run.log")
    wall = time.perf_counter() - start

    from rational_lamol.report import load_runs, summarize

    runs = load_runs([args.out / f"seed{seed}" for seed in seeds])
    rows = summarize(runs)
    result = {
        "command": command_line(),
        "commands": [" ".join(cmd) for cmd in commands],
        "jobs": args.jobs,
        "wall_seconds": round(wall, 1),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "summary": rows,
        "per_run": [{"method": r.method, "seed": r.record["seed"], "metrics": r.record["metrics"],
                     "score_matrix": r.record["score_matrix"], "frozen": r.cci[-1]["frozen"] if r.cci else None}
                    for r in runs],
    }
    out = args.json or result_path("main_job", Path(args.config).stem if args.config else "default")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"written {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

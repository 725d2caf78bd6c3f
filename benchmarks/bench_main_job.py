"""The main job's measurement: an experiment config over several seeds (and its task orders).

Runs ``rational-lamol run --seeds S --out OUT/seedS`` once per seed (the built-in default config
unless ``--config``; ``--jobs`` seeds at a time, one CPU thread each when more than one), then
summarizes the run dirs with ``rational_lamol.report``: ACC, BWT, FWT, forgetting as mean ± std
over (seed, order) runs, what was frozen, the share of CCI votes split by ties, and the paired
differences of every method against ``lamol`` and against its random control (mean, 95% bootstrap
interval, sign test). Writes it, with the wall time, the run environment and the exact command,
to ``benchmarks/results/main_job/<config name, or default>.json``. Resumable: ``--resume``
continues killed run dirs (a protocol longer than one sitting is resumed until done).

    python benchmarks/bench_main_job.py --seeds 0,1,2 --jobs 2 --out runs/main-job
    python benchmarks/bench_main_job.py --config benchmarks/protocols/demo.toml --seeds 0,1,2,3,4 \
        --jobs 2 --out runs/protocol-demo --resume --archive benchmarks/results/main_job/protocol_demo_runs

``--archive DIR`` keeps the finished runs' JSON (no models: small enough to commit) and restores it
into an empty ``--out`` before running, so a protocol survives a fresh checkout. It archives every
``--archive-every`` seconds while the seeds run, not only at the end, so a machine lost in the
middle of a long protocol costs only the runs still unfinished; ``--no-run`` only archives and
summarizes what is finished (a partial result, said as such in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from common import command_line, result_path

#: what a finished run leaves that --resume and the report need (models are retrained if missing)
ARCHIVED = ("config.json", "results.json", "timings.json", "task_baselines.json", "*/seed*/*/run.json",
            "*/seed*/*/timing.json", "*/seed*/*/cci.json")  # task_baselines.json: the report's learnability check


def archive_runs(run_dir: Path, archive: Path) -> None:
    """Copy the JSON of ``run_dir``'s finished runs into ``archive`` (small enough to commit)."""
    for pattern in ARCHIVED:
        for path in run_dir.glob(pattern):
            if path.name == "cci.json" and not (path.parent / "run.json").is_file():
                continue  # an unfinished run is redone on resume
            target = archive / path.relative_to(run_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.part")  # a copy cut short never replaces a good one
            shutil.copyfile(path, partial)
            os.replace(partial, target)


def restore_runs(archive: Path, run_dir: Path) -> None:
    """Put archived runs back into an empty ``run_dir``; ``rational-lamol run --resume`` then skips
    them and trains the rest (the shared task-1 models are retrained, identically)."""
    if not archive.is_dir() or (run_dir / "config.json").exists():
        return
    shutil.copytree(archive, run_dir, dirs_exist_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--config", default=None, help="experiment TOML (default: the built-in default)")
    parser.add_argument("--out", type=Path, default=Path("runs/main-job"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once")
    parser.add_argument("--no-run", action="store_true", help="only archive and summarize the finished runs")
    parser.add_argument("--json", type=Path, default=None,
                        help="default: benchmarks/results/main_job/<config name, or default>.json")
    parser.add_argument("--archive", type=Path, default=None,
                        help="keep the finished runs' JSON (no models) here, and restore from it before running: "
                             "a protocol longer than one sitting survives a fresh checkout")
    parser.add_argument("--archive-every", type=float, default=300.0, metavar="SECONDS",
                        help="archive the finished runs this often while the seeds run (default: 300)")
    args = parser.parse_args()
    if args.archive is not None:
        for seed in (s.strip() for s in args.seeds.split(",") if s.strip()):
            restore_runs(args.archive / f"seed{seed}", args.out / f"seed{seed}")

    seeds = [s.strip() for s in args.seeds.split(",") if s.strip()]
    commands = []
    for seed in seeds:
        cmd = ["rational-lamol", "run", "--seeds", seed, "--out", str(args.out / f"seed{seed}")]
        commands.append(cmd + (["--config", args.config] if args.config else []) + (["--resume"] if args.resume else []))
    env = dict(os.environ, **({"OMP_NUM_THREADS": "1"} if args.jobs > 1 else {}))
    start = time.perf_counter()

    def run_seed(cmd: list[str]) -> int:
        return subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode

    def archive_all() -> None:
        if args.archive is not None:
            for seed in seeds:
                archive_runs(args.out / f"seed{seed}", args.archive / f"seed{seed}")

    failed = False
    if not args.no_run:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # a freed slot takes the next seed
            futures = [pool.submit(run_seed, cmd) for cmd in commands]
            while wait(futures, timeout=args.archive_every).not_done:
                archive_all()
        failed = any(future.result() for future in futures)
    wall = time.perf_counter() - start
    archive_all()
    if failed:
        sys.exit("a seed's run failed; see its run.log")

    from rational_lamol.report import load_runs, paired_comparisons, summarize

    runs = load_runs([args.out / f"seed{seed}" for seed in seeds if (args.out / f"seed{seed}" / "results.json").is_file()])
    rows = summarize(runs)
    run_seconds = sum(r.wall_seconds or 0.0 for r in runs)
    result = {
        "command": command_line(),
        "commands": [" ".join(cmd) for cmd in commands],
        "jobs": args.jobs,
        "complete": not args.no_run,  # False: a summary of the runs finished so far
        "wall_seconds": round(wall, 1),
        "run_seconds_total": round(run_seconds, 1),  # sums every run's own wall time (resumed sittings too)
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "environment": runs[0].record.get("environment") if runs else None,
        "summary": rows,
        "comparisons": paired_comparisons(runs),
        "per_run": [{"method": r.method, "seed": r.record["seed"], "order": r.record["order"],
                     "metrics": r.record["metrics"], "score_matrix": r.record["score_matrix"],
                     "frozen": [e["frozen"] for e in r.cci] if r.cci else None,
                     "tied": [[e.get("n_tied"), e.get("n_used")] for e in r.cci] if r.cci else None,
                     "seconds": r.wall_seconds}
                    for r in runs],
    }
    out = args.json or result_path("main_job", Path(args.config).stem if args.config else "default")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"written {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

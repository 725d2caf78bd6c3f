"""Write ``benchmarks/results/INDEX.md``: every result file with what it measured, the command that
made it, its date and its headline figure, all read from the JSON files (and the date from git);
and the README's speed table (between its two markers) from the speed results.

    python benchmarks/make_index.py          # rewrite INDEX.md and the README's speed table
    python benchmarks/make_index.py --check  # exit 1 when either is out of date
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import REPO, RESULTS

INDEX = RESULTS / "INDEX.md"
Result = dict[str, Any]

#: what each benchmark folder holds, its script and the docs page that discusses it
BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "main_job": ("an experiment (the demo's protocol) over seeds and task orders: ACC mean ± std per method, "
                 "paired differences against lamol and the random controls",
                 "bench_main_job.py", "docs/results/lamol_protocol.md"),
    "invrat_synthetic": ("InvRat vs a plain RNP on the polluted synthetic tasks: spurious-token rate, token F1",
                         "bench_invrat_synthetic.py", "docs/results/invrat_synthetic.md"),
    "invrat_game_optimum": ("the InvRat game's exact optimum on the `word-noise` task, per lambda_diff",
                            "bench_invrat_game_optimum.py", "docs/results/invrat_synthetic.md"),
    "invrat_eraser": ("InvRat on ERASER from labels only, scored against the human rationales",
                      "bench_invrat_eraser.py", "docs/results/invrat_eraser.md"),
    "invrat_eraser_protocol": ("InvRat as a new user gets it (`invrat train`'s recipe) on ERASER test splits, under a "
                               "protocol fixed before it ran, beside random / first-k selections, TF-IDF and the majority class",
                               "bench_invrat_eraser_protocol.py", "docs/results/invrat_eraser.md"),
    "invrat_eraser_protocol_v2": ("protocol v2: InvRat as a new user gets it, after the recipe's word features were "
                                  "chosen on dev splits (GloVe), on ERASER test splits beside the same baselines",
                                  "bench_invrat_eraser_protocol.py", "docs/results/invrat_eraser.md"),
    "invrat_eraser_protocol_v3": ("protocol v3: InvRat as a new user gets it, after the recipe's warm-up was chosen "
                                  "on dev splits (4 epochs), on ERASER test splits beside the same baselines",
                                  "bench_invrat_eraser_protocol.py", "docs/results/invrat_eraser.md"),
    "invrat_recipe_design": ("a design protocol for the recipe, on ERASER dev splits: the players' word features "
                             "(GloVe against the recipe's MiniLM), read by dev accuracy against the recipe's",
                             "bench_invrat_eraser_protocol.py", "docs/results/invrat_eraser.md"),
    "invrat_recipe_design_bow": ("a design protocol for the recipe, on ERASER dev splits: bag-of-words predictors "
                                 "against the recipe's BiGRU, read by dev accuracy against the recipe's",
                                 "bench_invrat_eraser_protocol.py", "docs/results/invrat_eraser.md"),
    "invrat_recipe_design_warmup": ("a design protocol for the recipe, on ERASER dev splits: 4 warm-up epochs "
                                    "against the recipe's 1 (the GloVe recipe of protocol v2), read by dev accuracy",
                                    "bench_invrat_eraser_protocol.py", "docs/results/invrat_eraser.md"),
    "invrat_recipe_design_auto": ("a design protocol for the recipe, on ERASER dev splits: predictor = \"auto\" "
                                  "(bag of words where TF-IDF reads the label) against the v3 recipe, read by dev accuracy",
                                  "bench_invrat_eraser_protocol.py", "docs/results/invrat_eraser.md"),
    "invrat_label_ceiling": ("InvRat's f_i alone on whole Movies reviews (no rationale): the label ceiling",
                             "bench_invrat_label_ceiling.py", "docs/results/invrat_eraser.md"),
    "invrat_rationalize": ("`Rationalizer` throughput on ERASER Movies reviews",
                           "bench_invrat_rationalize.py", "docs/results/throughput.md"),
    "pair_plateau": ("how long the demo's pair task stays on its loss plateau after a keyword task: first epoch "
                     "below the level, and its diagonal, per run (read from finished run dirs)",
                     "pair_plateau.py", "docs/results/demo_design.md"),
    "cci": ("CCI vectorized vs a per-row loop: examples/s and identical choices",
            "bench_cci.py", "docs/results/throughput.md"),
    "cci_official": ("CCI arithmetic vs the official r_lamol algorithm (per-example numpy), interleaved: "
                     "s/example, ratio, share of the lean forward", "bench_cci_official.py", "docs/results/throughput.md"),
    "lamol_throughput": ("LAMOL pseudo-sample generation (KV cache + batch vs plain loop) and training tokens/s",
                         "bench_lamol_throughput.py", "docs/results/throughput.md"),
    "gpu_paper": ("the paper's setting scaled to minutes on a GPU: seconds per phase, tokens/s, peak memory, "
                  "score matrices", "gpu_paper.py", "docs/results/gpu_paper.md"),
    "cci_ties": ("why CCI's block scores tie: examples tied at their lowest score, at 1.0 or at another value",
                 "bench_cci_ties.py", "docs/results/lamol_protocol.md"),
    "cheap_probe": ("a probe stopped early vs the full probe: same choice per share of its steps, cost vs lamol",
                    "bench_cheap_probe.py", "docs/results/lamol_protocol.md"),
    "cci_transition": ("one transition's CCI end to end at GPT-2-small scale (forwards, scores, votes), "
                       "extrapolated to 200 examples", "bench_cci_transition.py", "docs/results/throughput.md"),
    "generation": ("pseudo-sample generation: ours vs the official LAMOL sampler, interleaved, tokens/s",
                   "bench_generation.py", "docs/results/throughput.md"),
    "training_overhead": ("train_task vs a minimal PyTorch loop on the same model, batches and AdamW: positions/s, "
                          "overhead, share of the matmul rate", "bench_training_overhead.py", "docs/results/throughput.md"),
    "design_lr_floor": ("lamol-only design experiment on the demo: lr_floor 0 / 1/3 / 1, unlearned pairs and ACC",
                        "protocols/design_lr_floor", "docs/results/demo_design.md"),
    "task_baselines": ("what a config's tasks' labels alone give on their test splits: majority class, TF-IDF "
                       "logistic regression", "bench_task_baselines.py", "docs/results/lamol_protocol.md"),
    "rationale_chance": ("token F1 of InvRat-length rationales chosen at random and from the front, on the "
                         "examples CCI reads", "bench_rationale_chance.py", "docs/results/lamol_protocol.md"),
    "replay_quality": ("each task learned alone: its score against the majority class, and the share of "
                       "well-formed pseudo-samples its model generates; and one two-task `rational-lamol run` "
                       "with that replay", "bench_replay_quality.py",
                       "docs/results/paper_cpu.md"),
}

# The recorded commands name the machine's own paths; the index shows them from the repository root.
# Scripts renamed since are given their current name.
PATH_PREFIXES = {"/work/main/": "", "/work/shared/": "../shared/", "/tmp/data/": "../shared/data/",
                 "benchmarks/invrat_game_optimum.py": "benchmarks/bench_invrat_game_optimum.py"}


def relative_paths(command: str) -> str:
    for prefix, replacement in PATH_PREFIXES.items():
        command = command.replace(prefix, replacement)
    return command


def synthetic_command(args: Result) -> str:
    """Rebuild the command from the stored arguments (results older than the ``command`` field)."""
    parts = ["python", "benchmarks/bench_invrat_synthetic.py", "--setting", args.get("setting", "varied")]
    defaults = {"n_train": 1000, "n_val": 150, "n_test": 300, "epochs": 30, "restarts": 1, "jobs": 1}
    parts += ["--tasks", *args["tasks"], "--methods", *args["methods"]]
    parts += ["--seeds", *map(str, args.get("seeds", [args.get("seed", 0)]))]
    for key, default in defaults.items():
        if args.get(key, default) != default:
            parts += [f"--{key.replace('_', '-')}", str(args[key])]
    for flag in ("data", "set"):
        for key, value in args.get(flag, []):
            parts += [f"--{flag}", f"{key}={json.dumps(value, separators=(',', ':'))}"]
    return shlex.join(parts)


def command_of(benchmark: str, data: Result) -> str:
    if "command" in data:
        return relative_paths(data["command"])
    if benchmark == "invrat_synthetic":
        return synthetic_command(data["args"])
    if benchmark == "design_lr_floor":
        return "; ".join(data["commands"])
    if benchmark == "main_job":
        seeds = ",".join(cmd.split("--seeds ")[1].split()[0] for cmd in data["commands"])
        return f"python benchmarks/bench_main_job.py --seeds {seeds} --jobs {data['jobs']} --out runs/main-job"
    if benchmark == "cci":
        return f"python benchmarks/bench_cci.py --threads {data['environment']['torch_threads']}"
    if benchmark in ("lamol_throughput", "invrat_rationalize"):
        return f"python benchmarks/{BENCHMARKS[benchmark][1]} --threads {data['threads']}"
    return "—"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def headline_synthetic(d: Result) -> str:
    return "; ".join(
        f"{row['task']} {row['method']}: spurious {pct(row['mean_spurious_selection_rate'])}, "
        f"token F1 {row['mean_token_f1']:.3f}" + (f" ({row['seeds']} seeds)" if row["seeds"] > 1 else "")
        for row in d.get("summary") or [{**r, "mean_spurious_selection_rate": r["spurious_selection_rate"],
                                         "mean_token_f1": r["token_f1"], "seeds": 1} for r in d["rows"]]
    )


def headline_eraser(d: Result) -> str:
    t = d["test"]
    return (f"macro F1 {t['macro_f1']:.3f}, IOU F1 {t['iou_f1']:.3f}, token F1 {t['token_f1']:.3f} "
            f"({d['n_test']} test documents)")


def headline_eraser_protocol(d: Result) -> str:
    if "draws" in d:  # --random-draws: each seed's p against the random selection's draws
        return f"p against {d['draws']} random draws (token F1 / AUPRC): " + "; ".join(
            f"{task} seed {seed} {r['token_f1']['at_or_above']:.2f} / {r['auprc']['at_or_above']:.2f}"
            for task, seeds in d["tasks"].items() for seed, r in seeds.items())
    m = d["mean"]
    return (f"{len(d['seeds_done'])} seed(s): token F1 {m['invrat']['token_f1']:.3f} (random {m['random']['token_f1']:.3f}, "
            f"first-k {m['first_k']['token_f1']:.3f}), AUPRC {m['invrat']['auprc']:.3f} (random {m['random']['auprc']:.3f}, "
            f"first-k {m['first_k']['auprc']:.3f}), accuracy {m['invrat']['accuracy']:.3f} "
            f"(TF-IDF {m['tfidf_logreg']['accuracy']:.3f}, majority {m['majority']['accuracy']:.3f})")


def headline_main_job(d: Result) -> str:
    return "; ".join(f"`{row['method']}` ACC {row['acc']['mean']:.1f} ± {row['acc']['std']:.1f}" for row in d["summary"])


def headline_cci(d: Result) -> str:
    speedups = [row[level]["speedup"] for row in d["sizes"] for level in ("block", "head")]
    sizes = [row["doc_tokens"] for row in d["sizes"]]
    same = "yes" if d.get("all_compared_choices_identical") else "no"
    return (f"vectorized {min(speedups):.1f}-{max(speedups):.1f}x the loop's examples/s "
            f"({min(sizes)}-{max(sizes)} document tokens); same choices: {same}")


def headline_cci_official(d: Result) -> str:
    return "; ".join(
        f"{row['doc_tokens']} tokens: " + ", ".join(
            f"{level} {row[level]['official_over_ours']}x ({100 * row[level]['ours_share_of_lean_forward']:.0f}% of the forward)"
            for level in ("block", "head"))
        for row in d["sizes"]
    ) + f" ({d['environment']['torch_threads']} thread, load {d['environment']['load_average_at_start'][0]:.1f})"


def headline_throughput(d: Result) -> str:
    return "; ".join(
        f"{name}: generation {run['generation']['speedup']}x faster with the KV cache, "
        f"training {run['training']['tokens_per_second']:,.0f} tok/s"
        for name, run in d["runs"].items()
    ) + f" ({d['device']}, {d['threads']} thread(s))"


def headline_gpu_paper(d: Result) -> str:
    s, device = d["seconds"], d["device"]
    return (f"{d['status']}, {d['total_seconds']:.0f} s on {device['world_size']}x {device['name']} "
            f"({device['precision']}): training {s['training']:.0f} s at {d['tokens_per_second']['training']:,.0f} tok/s, "
            f"generation {s['generation']:.0f} s, CCI {s['cci']:.0f} s, eval {s['eval']:.0f} s; "
            f"{sum(r['complete'] for r in d['runs'])} runs complete")


def headline_replay_quality(d: Result) -> str:
    if "variants" not in d:  # the two-task `rational-lamol run` (replay_two_tasks.json)
        return "; ".join(f"{r['method']}: ACC {r['metrics']['acc']:.1f}, BWT {r['metrics']['bwt']:+.1f}"
                         for r in d["results"]["runs"])
    return "; ".join(f"{Path(v['config']).stem}: well-formed {100 * v['well_formed_share']:.0f}%, "
                     f"score - majority {v['score_minus_majority']:+.1f}" for v in d["variants"])


def headline_game(d: Result) -> str:
    rates = "/".join(f"{r:g}" for r in d["train_rates"])
    return f"environments {rates}: invariant optimum from lambda_diff " + ", ".join(
        f"{t['invariant_optimum_from_lambda_diff']} ({task})" for task, t in d["tasks"].items())


def headline_pair_plateau(d: Result) -> str:
    return "; ".join(f"{name}: median escape epoch {g['summary']['median_escape_epoch']} "
                     f"({g['summary']['escaped']} of {g['summary']['runs']} escaped), {g['summary']['unlearned']} unlearned"
                     for name, g in d["groups"].items())


HEADLINES: dict[str, Callable[[Result], str]] = {
    "main_job": headline_main_job,
    "pair_plateau": headline_pair_plateau,
    "invrat_synthetic": headline_synthetic,
    "invrat_game_optimum": headline_game,
    "invrat_eraser": headline_eraser,
    "invrat_eraser_protocol": headline_eraser_protocol,
    "invrat_eraser_protocol_v2": headline_eraser_protocol,
    "invrat_recipe_design": headline_eraser_protocol,
    "invrat_recipe_design_bow": headline_eraser_protocol,
    "invrat_recipe_design_warmup": headline_eraser_protocol,
    "invrat_recipe_design_auto": headline_eraser_protocol,
    "invrat_eraser_protocol_v3": headline_eraser_protocol,
    "invrat_label_ceiling": lambda d: f"test macro F1 {d['test']['macro_f1']:.3f} (kept epoch {d['selected_epoch']})",
    "invrat_rationalize": lambda d: f"{d['docs_per_minute']:,.0f} documents/minute on {d['threads']} thread(s)",
    "cci": headline_cci,
    "cci_official": headline_cci_official,
    "lamol_throughput": headline_throughput,
    "gpu_paper": headline_gpu_paper,
    "cci_ties": lambda d: (f"{d['tied']} of {d['examples']} examples tied at their lowest block score, "
                           f"{d['tied_at_1']} of them at 1.0"),
    # the folder also holds the protocol's bench_main_job summary (main_job.json)
    "cheap_probe": lambda d: headline_main_job(d) if "per_run" in d else
    f"{d['runs']} runs; default share by the rule: {d['default_share_by_the_rule']}",
    "cci_transition": lambda d: "; ".join(
        f"{level}: {row['s_per_example']:.2f} s/example ({100 * row['forward_share']:.0f}% forward), "
        f"{row['transition_of_200_minutes']} min per 200-example transition" for level, row in d["levels"].items()
    ) + f" ({d['doc_tokens']} tokens, {d['environment']['torch_threads']} thread(s))",
    "generation": lambda d: "; ".join(f"{r['size']}, window {r['window']}: {r['ours_over_official']}x the official "
                                      f"sampler ({r['ours_tokens_per_second']:,.0f} vs "
                                      f"{r['official_tokens_per_second']:,.0f} tok/s)" for r in d["runs"]),
    "training_overhead": lambda d: (f"minimal loop / ours {d['ours_overhead']}x ({d['ours_positions_per_second']:,.1f} vs "
                                    f"{d['minimal_positions_per_second']:,.1f} positions/s); ours at "
                                    f"{100 * d['ours_share_of_matmul_rate']:.0f}% of the matmul rate "
                                    f"({d['model']['n_layer']}L d{d['model']['n_embd']})"),
    "design_lr_floor": lambda d: "; ".join(f"lr_floor {v}: {r['unlearned']} unlearned of {len(r['runs'])}, lowest diagonal "
                                           f"{r['lowest_diagonal']}, mean ACC {r['mean_acc']}" for v, r in d["variants"].items()),
    "replay_quality": headline_replay_quality,
    "task_baselines": lambda d: "; ".join(f"{task}: majority {row['majority']:.1f}%, TF-IDF {row['tfidf_logreg']:.1f}%"
                                          for task, row in d["tasks"].items()),
    "rationale_chance": lambda d: "; ".join(f"{task}: random {row['random_token_f1']:.3f}, first k {row['first_k_token_f1']:.3f}"
                                            for task, row in d["tasks"].items()),
}


def git_date(path: Path) -> str:
    """The date of the last commit that wrote this content (renames are not writes; a copy is:
    --follow takes a new file similar to an old one for its copy)."""
    try:
        out = subprocess.run(
            ["git", "log", "--follow", "--diff-filter=ACM", "-1", "--format=%cs", "--", str(path.relative_to(REPO))],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "—"
    return out or "not committed"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python benchmarks/make_index.py` from the JSON files in this folder; do not edit by hand.",
        "Commands are shown from the repository root (recorded machine paths made relative, renamed scripts",
        "given their current name). Dates are",
        "those of the commit that wrote each file. The prose and the comparisons are in `docs/results/`.",
        "",
    ]
    folders = [name for name in BENCHMARKS if (RESULTS / name).is_dir()]
    unknown = sorted(p.name for p in RESULTS.iterdir() if p.is_dir() and p.name not in BENCHMARKS)
    if unknown:
        sys.exit(f"make_index.py: no description for the folder(s) {unknown}; add them to BENCHMARKS")
    for name in folders:
        what, script, page = BENCHMARKS[name]
        lines += [f"## `{name}/`", "", f"{what}. Script: [`{script}`](../{script}); discussed in [{page}](../../{page}).", "",
                  "| file | date | command | headline |", "|---|---|---|---|"]
        for path in sorted((RESULTS / name).glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            lines.append(f"| [`{path.name}`]({name}/{path.name}) | {git_date(path)} | "
                         f"`{cell(command_of(name, data))}` | {cell(HEADLINES[name](data))} |")
        lines.append("")
    return "\n".join(lines)


README = REPO / "README.md"
PERF_START = "<!-- performance table: written by benchmarks/make_index.py from benchmarks/results; do not edit -->"
PERF_END = "<!-- end of performance table -->"


def _result(name: str, file: str = "cpu") -> Result | None:
    path = RESULTS / name / f"{file}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _floor_note(level: Result) -> str:
    """The official time over the floor of one fused pass that selects with numpy's sort (older runs lack it)."""
    ratio = level.get("official_over_floor")
    return f"; one fused pass sorting with numpy: at most {ratio:.0f}x" if ratio else ""


def performance_table() -> str:
    """The README's speed table: one row per measured claim of issue 20, read from the result files."""
    rows = []
    link = "[`{0}/cpu.json`](benchmarks/results/{0}/cpu.json)".format
    if d := _result("cci_official"):
        for size in d["sizes"]:
            b, h = size["block"], size["head"]
            rows.append(f"| CCI arithmetic vs the official r_lamol arithmetic, {size['doc_tokens']:,} document tokens "
                        f"(block / head) | {b['official_over_ours']}x / {h['official_over_ours']}x faster; "
                        f"{100 * b['ours_share_of_lean_forward']:.0f}% / {100 * h['ours_share_of_lean_forward']:.0f}% "
                        f"of the forward{_floor_note(b)} | ≥ 100x at 128 and 512 tokens, ≤ 10% of the forward at 1,024 | "
                        f"{link('cci_official')} |")
    if d := _result("cci_transition"):
        threads = d["environment"]["torch_threads"]
        minutes = " / ".join(str(row["transition_of_200_minutes"]) for row in d["levels"].values())
        rows.append(f"| One transition's CCI, GPT-2-small shape, 200 examples of {d['doc_tokens']:,} tokens (block / head) "
                    f"| {minutes} minutes on {threads} thread(s) | < 30 minutes on 2 cores | {link('cci_transition')} |")
    if d := _result("generation"):
        by_size: dict[str, list[Result]] = {}
        for run in d["runs"]:
            by_size.setdefault(run["size"], []).append(run)
        for size, runs in by_size.items():
            windows = " / ".join(str(r["window"]) for r in runs)
            rows.append(f"| Pseudo-sample generation vs the official LAMOL sampler, {size}, window {windows} | "
                        + " / ".join(f"{r['ours_over_official']}x" for r in runs) + " ("
                        + " / ".join(f"{r['ours_tokens_per_second']:,.0f} vs {r['official_tokens_per_second']:,.0f}"
                                     for r in runs) + f" tok/s) | ≥ 1.5x | {link('generation')} |")
    if d := _result("training_overhead"):
        m = d["model"]
        rows.append(f"| Training step vs a minimal PyTorch loop, {m['n_layer']} blocks, d {m['n_embd']}, vocabulary "
                    f"{m['vocab']:,} | {d['ours_overhead']}x the minimal loop's time; "
                    f"{100 * d['ours_share_of_matmul_rate']:.0f}% of the matmul rate | ≤ 1.1x | {link('training_overhead')} |")
    return "\n".join([PERF_START, "", "| what | measured | goal (issue 20) | result |", "|---|---|---|---|", *rows, "",
                      PERF_END])


def readme_with_performance_table(readme: str) -> str:
    start, end = readme.find(PERF_START), readme.find(PERF_END)
    if start < 0 or end < start:
        sys.exit(f"make_index.py: README.md lacks the performance table markers ({PERF_START!r} ... {PERF_END!r})")
    return readme[:start] + performance_table() + readme[end + len(PERF_END):]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when INDEX.md differs from what would be written")
    args = parser.parse_args()
    text = render()
    readme = README.read_text(encoding="utf-8")
    new_readme = readme_with_performance_table(readme)
    if args.check:
        if not INDEX.exists() or INDEX.read_text(encoding="utf-8") != text or new_readme != readme:
            sys.exit("benchmarks/results/INDEX.md or the README's performance table is out of date: "
                     "run python benchmarks/make_index.py")
        return
    INDEX.write_text(text, encoding="utf-8")
    README.write_text(new_readme, encoding="utf-8")
    print(f"written {INDEX} and the performance table of {README}")


if __name__ == "__main__":
    main()

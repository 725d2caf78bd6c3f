"""The per-task loop shared by every method (docs/algorithms.md §1).

For each (task order, seed, method) run: start from the same initial model, score it on every
task (the baseline row), then for each stage let the method learn it, score every task, save the
model at ``<i>_<task>/model/``. Everything a run needs is checked before any training starts.

Run dir layout (a contract other tools read)::

    config.json            the resolved config
    results.json           {"runs": [...]} (see results.py): deterministic, no wall-clock values
    timings.json           wall-clock seconds and throughput of every run of results.json
    run.log                the log
    _shared/               tokenizer, task-1 checkpoints and baselines shared between methods
    <order>/seed<k>/<method>/
        progress.json      finished stages (for --resume)
        run.json           this run's entry of results.json
        timing.json        this run's entry of timings.json
        cci.json           what a freezing method froze at each transition (rational-*, random-*)
        <i>_<task>/model/  the model after stage i (save_pretrained, with its tokenizer)
        <i>_<task>/stage.json   scores, training and pseudo-sample statistics
        <i>_<task>/pseudo_samples.jsonl   the replayed pseudo-samples ({"task", "text"}; replay methods)
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rational_lamol.config import ExperimentConfig, TrainingConfig
from rational_lamol.evaluate import evaluate_task
from rational_lamol.methods import Method, available_methods, in_dependency_order, make_method
from rational_lamol.modeling import (
    build_scratch_model,
    load_pretrained,
    load_saved,
    prepare_model_tokens,
    save_model,
    train_scratch_tokenizer,
)
from rational_lamol.pseudo import PseudoReport, generate_pseudo_samples
from rational_lamol.results import build_run_record, split_timings, write_results
from rational_lamol.streams import STREAMS_VERSION, stream_seed
from rational_lamol.tasks import (
    SpecialIds,
    TaskData,
    TrainSequence,
    check_fits,
    load_tasks,
    pseudo_sample_count,
    special_ids,
    special_token_strings,
)
from rational_lamol.trainer import TrainStats, get_accelerator
from rationale_commons.errors import DataError, first_line
from rationale_commons.runtime import (
    atomic_dir,
    fault_point,
    is_complete,
    lock_run_dir,
    path_inside,
    read_json,
    seed_everything,
    write_json_atomic,
    write_jsonl_atomic,
)

log = logging.getLogger("rational_lamol")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# The context a method sees
# --------------------------------------------------------------------------------------------


@dataclass
class TaskContext:
    """Everything a method needs to learn one stage."""

    session: Session
    method: Method
    seed: int
    order: list[str]
    index: int  # 0-based stage index
    task_names: list[str]  # tasks learned in this stage (one; all for multitask)
    model: Any
    training: TrainingConfig
    run_dir: Path  # this run's dir (methods may write extra JSON here, e.g. cci.json)
    stage_dir: Path  # <i>_<task>/
    stats: dict[str, Any] = field(default_factory=dict)
    stream: str = "train"  # the random stream training draws from ("probe" for a rational probe)
    _replay: list[TrainSequence] | None = field(default=None, repr=False)

    # -- shortcuts ---------------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self.session.tokenizer

    @property
    def ids(self) -> SpecialIds:
        return self.session.ids

    @property
    def tasks(self) -> dict[str, TaskData]:
        return self.session.tasks

    @property
    def accelerator(self):
        return self.session.accelerator

    @property
    def max_length(self) -> int:
        return self.session.config.model.max_length

    @property
    def options(self) -> dict[str, Any]:
        return self.method.options

    @property
    def learned_tasks(self) -> list[str]:
        """The tasks learned once this stage is done, in order (the streams' key)."""
        return [*self.order[: self.index], *self.task_names]

    @property
    def train_seed(self) -> int:
        """The seed of this stage's batches and dropout (:mod:`rational_lamol.streams`)."""
        return stream_seed(self.seed, self.learned_tasks, self.stream)

    @property
    def previous_tasks(self) -> list[str]:
        return self.order[: self.index]

    def train_sequences(self) -> list[TrainSequence]:
        out: list[TrainSequence] = []
        for name in self.task_names:
            out += self.session.sequences(name, "train")
        return out

    def replay_sequences(self) -> list[TrainSequence]:
        """Pseudo-samples of the earlier tasks, generated once per stage from the model as it was
        when first asked (before any training of this stage)."""
        if self._replay is None:
            n_train = sum(len(self.tasks[t].splits.train) for t in self.task_names)
            prev = self.previous_tasks
            counts = dict(zip(prev, pseudo_sample_count(self.training.gamma, n_train, len(prev)), strict=True))
            seqs, report = generate_pseudo_samples(
                self.model, self.tokenizer, counts, self.ids, max_length=self.max_length - 1,
                top_k=self.training.top_k, temperature=self.training.temperature,
                batch_size=self.training.gen_batch_size,
                seed=stream_seed(self.seed, self.learned_tasks, "replay"), accelerator=self.accelerator,
            )
            self._replay = seqs
            self.stats["pseudo"] = report.as_dict()
            self._log_pseudo(report)
            if self.accelerator.is_main_process:  # what the model replayed, for inspection
                rows = [{"task": q.task, "text": self.tokenizer.decode(q.qa_ids, skip_special_tokens=False)} for q in seqs]
                write_jsonl_atomic(self.stage_dir / "pseudo_samples.jsonl", rows)
        return self._replay

    def with_model(self, model, *, stream: str = "train") -> TaskContext:
        """The same stage with another model (e.g. a probe copy) drawing from ``stream``; shares
        the replay cache, so a probe and the retrain replay the same pseudo-samples."""
        if self.method.replay and self.index > 0:
            self.replay_sequences()
        return TaskContext(**{**self.__dict__, "model": model, "stats": self.stats, "stream": stream})

    def copy_model(self):
        return copy.deepcopy(self.model)

    def log_training(self, stats: TrainStats, *, n_sequences: int) -> None:
        self.stats.setdefault("train", []).append({**stats.as_dict(), "sequences": n_sequences})
        log.info("  trained %s on %d sequences: %d steps, %.1fs, %.0f tok/s, loss %.3f",
                 "+".join(self.task_names), n_sequences, stats.steps, stats.seconds, stats.tokens_per_second,
                 stats.final_loss)

    def _log_pseudo(self, report: PseudoReport) -> None:
        d = report.as_dict()
        log.info("  pseudo-samples: kept %s of %s (%.0f tok/s)", d["kept"], d["requested"], d["tokens_per_second"] or 0)

    def write_json(self, name: str, data: Any) -> Path:
        path = path_inside(self.run_dir, name)
        if self.accelerator.is_main_process:
            write_json_atomic(path, data)
        return path


def run_environment(accelerator) -> dict[str, Any]:
    """What moves a result besides the config and seed: thread count, device, precision, process
    count, machine and package versions (recorded with every run)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "accelerate", "tokenizers", "rational-lamol", "invrat",
                    "rationale-commons"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"threads": torch.get_num_threads(), "device": str(accelerator.device),
            "processes": accelerator.num_processes, "precision": accelerator.mixed_precision,
            "machine": platform.machine(), "platform": platform.system(), "versions": versions}


# --------------------------------------------------------------------------------------------
# The session: checked inputs, the tokenizer, shared caches
# --------------------------------------------------------------------------------------------


class Session:
    """One experiment: validated tasks and methods, the tokenizer, the shared-model caches."""

    def __init__(self, config: ExperimentConfig, out_dir: Path, *, resume: bool = False) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.accelerator = get_accelerator(config.training)
        if config.training.threads:
            torch.set_num_threads(config.training.threads)
        acc = self.accelerator
        log.info("device %s, %d process(es), mixed precision %s, %d CPU thread(s)", acc.device, acc.num_processes,
                 acc.mixed_precision, torch.get_num_threads())
        # 1. everything that can be wrong is checked here, before training
        self.methods = in_dependency_order(
            {name: make_method(name, config.method_options.get(name)) for name in config.methods})
        unknown_opts = sorted(set(config.method_options) - set(available_methods()))
        if unknown_opts:
            raise DataError(f"options given for unknown methods {unknown_opts}; available: "
                            f"{', '.join(available_methods())}", field="method_options")
        for name in sorted(set(config.method_options) - set(config.methods)):  # validate, then ignore
            make_method(name, config.method_options[name])
        self.tasks = load_tasks(config)
        self._check_out_dir()
        self._pretrained: tuple[Any, Any] | None = None
        self._new_tokenizer = False
        self.tokenizer = self._prepare_tokenizer()
        shared_gen = config.training.gen_token == "shared"
        self.ids = special_ids(self.tokenizer, [t.name for t in config.tasks], shared_gen=shared_gen)
        check_fits(self.tasks, self.tokenizer, config.model.max_length)
        self._record_start()  # 2. only now, with everything checked, the run dir is written
        self._seq_cache: dict[tuple[str, str], list[TrainSequence]] = {}
        self.environment = run_environment(self.accelerator)

    # -- setup -------------------------------------------------------------------------------
    def _check_out_dir(self) -> None:
        """Refuse a dir that holds another run, or a different config on --resume. Reads only:
        config.json is written once every check passed (``_record_start``), so a run that fails
        before training leaves its --out reusable. (run_experiment holds the dir's lock.)"""
        cfg_path = self.out_dir / "config.json"
        self.fresh = not cfg_path.exists()
        if self.fresh or not self.accelerator.is_main_process:
            return
        if not self.resume:
            raise DataError("run dir already holds a run; pass --resume to continue it or pick another --out",
                            path=self.out_dir)
        if read_json(cfg_path) != json.loads(self.config.model_dump_json()):
            raise DataError("--resume: the config differs from the one this run dir was started with",
                            path=cfg_path)

    def _record_start(self) -> None:
        """Write the tokenizer (when trained here) and then config.json: the run dir now holds a run."""
        if not self.accelerator.is_main_process:
            return
        if self._new_tokenizer:
            with atomic_dir(self.shared_dir / "tokenizer") as tmp:
                self.tokenizer.save_pretrained(str(tmp))
        write_json_atomic(self.out_dir / "config.json", json.loads(self.config.model_dump_json()))

    @property
    def shared_dir(self) -> Path:
        return self.out_dir / "_shared"

    def _prepare_tokenizer(self):
        mc = self.config.model
        names = [t.name for t in self.config.tasks]
        if not mc.is_scratch:
            self._pretrained = load_pretrained(mc, names)
            return self._pretrained[1]
        folder = self.shared_dir / "tokenizer"
        # a run's own tokenizer (older runs wrote no completion marker); a fresh run trains its own
        if not self.fresh and (is_complete(folder) or (folder / "tokenizer.json").is_file()):
            from transformers import AutoTokenizer

            try:
                return AutoTokenizer.from_pretrained(str(folder))
            except Exception as exc:  # unreadable: train it again (deterministic from the same data)
                log.warning("tokenizer in %s does not load (%s); training it again", folder, first_line(exc))
        texts = []
        for task in self.tasks.values():
            texts += task.texts()
        self._new_tokenizer = True
        return train_scratch_tokenizer(texts, vocab_size=mc.vocab_size, special_tokens=special_token_strings(names))

    def initial_model(self, seed: int):
        """The model before any training: a fresh GPT-2 drawn from ``seed``, or the pretrained one."""
        seed_everything(seed)
        mc = self.config.model
        if mc.is_scratch:
            model = build_scratch_model(mc, len(self.tokenizer), eos_id=self.ids.eos, pad_id=self.ids.pad)
            prepare_model_tokens(model, self.tokenizer, [t.name for t in self.config.tasks])
        else:
            assert self._pretrained is not None
            model = copy.deepcopy(self._pretrained[0])
        model.config._attn_implementation = "eager"
        return model.to(self.accelerator.device).eval()

    def sequences(self, task: str, split: str) -> list[TrainSequence]:
        key = (task, split)
        if key not in self._seq_cache:
            self._seq_cache[key] = self.tasks[task].sequences(split, self.tokenizer, self.config.model.max_length,
                                                              self.ids)
        return self._seq_cache[key]

    # -- evaluation --------------------------------------------------------------------------
    def score_all(self, model, order: list[str]) -> list[float]:
        tc = self.config.training
        return [
            round(evaluate_task(model, self.tokenizer, self.tasks[t], self.ids, max_length=self.config.model.max_length,
                                batch_size=tc.eval_batch_size, accelerator=self.accelerator), 4)
            for t in order
        ]

    def baseline(self, seed: int, order: list[str]) -> list[float]:
        """Scores before any training (cached per seed: every method starts from that model)."""
        path = self.shared_dir / f"baseline_seed{seed}_{_hash(self.config.model.model_dump())}.json"
        by_task = None
        if path.exists():
            try:
                by_task = read_json(path)
            except DataError as exc:  # a cache: recompute it
                log.warning("%s; computing it again", first_line(exc))
        if by_task is None:
            model = self.initial_model(seed)
            names = [t.name for t in self.config.tasks]
            by_task = dict(zip(names, self.score_all(model, names), strict=True))
            if self.accelerator.is_main_process:
                write_json_atomic(path, by_task)
        return [by_task[t] for t in order]

    # -- the loop ----------------------------------------------------------------------------
    def run_all(self) -> dict:
        """Every (order, seed, method) run; returns the results.json content (and the timings)."""
        records, timings = [], []
        for order in self.config.resolved_orders():
            for seed in self.config.seeds:
                for method in self.methods.values():
                    record, timing = self.run_one(method, seed, order)
                    records.append(record)
                    timings.append(timing)
                    if self.accelerator.is_main_process:
                        write_results(self.out_dir, records, self.config, timings)
        return {"runs": records, "timings": timings}

    def run_dir_for(self, method: Method, seed: int, order: list[str]) -> Path:
        return path_inside(self.out_dir, "-".join(order), f"seed{seed}", method.name)

    def stages(self, method: Method, order: list[str]) -> list[list[str]]:
        return [list(order)] if method.multitask else [[t] for t in order]

    def run_one(self, method: Method, seed: int, order: list[str]) -> tuple[dict, dict | None]:
        """One run: its results.json record and its wall-clock timing."""
        acc = self.accelerator
        run_dir = self.run_dir_for(method, seed, order)
        rel = run_dir.relative_to(self.out_dir).as_posix()
        run_json, timing_json = run_dir / "run.json", run_dir / "timing.json"
        if self.resume and run_json.exists():
            log.info("%s seed %d %s: already finished", method.name, seed, "->".join(order))
            timing = read_json(timing_json) if timing_json.is_file() else None
            return read_json(run_json), timing
        log.info("== %s | seed %d | order %s", method.name, seed, " -> ".join(order))
        training = method.training_config(self.config.training)
        stages = self.stages(method, order)
        progress_path = run_dir / "progress.json"
        progress: dict[str, Any] = {"stages": []}
        if self.resume and progress_path.exists():
            progress = read_json(progress_path)
        baseline = self.baseline(seed, order)
        done = progress["stages"]
        model = self._resume_model(run_dir, done)
        if model is not None:
            model = model.to(acc.device).eval()
            log.info("  resuming after stage %d (%s)", len(done), done[-1]["dir"])
        else:
            model = self.initial_model(seed)
        start = time.perf_counter() - sum(s.get("seconds", 0.0) for s in done)
        for index, names in enumerate(stages):
            if index < len(done):
                continue
            t0 = time.perf_counter()
            stage_name = f"{index + 1}_{names[0] if len(names) == 1 else 'all'}"
            ctx = TaskContext(session=self, method=method, seed=seed, order=order, index=index, task_names=names,
                              model=model, training=training, run_dir=run_dir,
                              stage_dir=path_inside(run_dir, stage_name))
            log.info(" stage %d/%d: %s", index + 1, len(stages), "+".join(names))
            model = self._learn_stage(method, ctx)
            scores = self.score_all(model, order)
            log.info("  scores %s", dict(zip(order, scores, strict=True)))
            stage = {"dir": stage_name, "tasks": names, "scores": scores, "seconds": time.perf_counter() - t0,
                     **ctx.stats}
            if acc.is_main_process:
                save_model(acc.unwrap_model(model), self.tokenizer, ctx.stage_dir / "model")
                write_json_atomic(ctx.stage_dir / "stage.json", stage)
                done.append(stage)
                write_json_atomic(progress_path, progress)
                fault_point(f"stage-done:{method.name}:{index + 1}")  # tests: a kill between stages
            else:
                done.append(stage)
            acc.wait_for_everyone()
        stages, stage_timings = split_timings([{k: v for k, v in s.items() if k != "scores"} for s in done])
        record = build_run_record(
            method=method.name, seed=seed, order=order, rel_dir=rel, rows=[s["scores"] for s in done],
            baseline=baseline,
            extra={"stages": stages, "method_options": method.options, "environment": self.environment},
        )
        timing = {"wall_seconds": round(time.perf_counter() - start, 2), "stages": stage_timings}
        if acc.is_main_process:
            write_json_atomic(timing_json, timing)
            write_json_atomic(run_json, record)
        return record, timing

    @staticmethod
    def _resume_model(run_dir: Path, done: list[dict[str, Any]]):
        """The model after the last finished stage; a stage whose model does not load is dropped
        from ``done`` (in place), to be trained again. None when no stage is left."""
        while done:
            try:
                return load_saved(run_dir / done[-1]["dir"] / "model")[0]
            except DataError as exc:
                log.warning("  %s; training stage %d again", first_line(exc), len(done))
                done.pop()
        return None

    def _learn_stage(self, method: Method, ctx: TaskContext):
        """Stage 1 of a method that trains it like plain LAMOL reuses a cached task-1 model."""
        if ctx.index != 0 or not method.shares_task1:
            return method.learn_task(ctx)
        key = _hash({"seed": ctx.seed, "task": ctx.task_names, "streams": STREAMS_VERSION, "model": self.config.model.model_dump(),
                     "training": ctx.training.model_dump(),
                     "data": [self.config.task(t).model_dump() for t in ctx.task_names],
                     "data_seed": self.config.data_seed})
        folder = path_inside(self.shared_dir, "task1", f"{ctx.task_names[0]}_seed{ctx.seed}_{key}")
        if is_complete(folder):  # a folder without the marker was being written when a run died: absent
            try:
                model, _ = load_saved(folder / "model")
                info = read_json(folder / "info.json")
            except DataError as exc:
                log.warning("  shared task-1 model unusable (%s); training it again", first_line(exc))
            else:
                log.info("  task-1 model shared from %s", folder.relative_to(self.out_dir))
                ctx.stats.update(info.get("stats", {}))
                ctx.stats["task1_shared_from"] = folder.relative_to(self.out_dir).as_posix()
                return model.to(self.accelerator.device).eval()
        model = method.learn_task(ctx)
        if self.accelerator.is_main_process:
            with atomic_dir(folder) as tmp:  # model and info.json appear together or not at all
                save_model(self.accelerator.unwrap_model(model), self.tokenizer, tmp / "model")
                write_json_atomic(tmp / "info.json", {"trained_by": method.name, "stats": ctx.stats})
        self.accelerator.wait_for_everyone()
        return model


def run_experiment(config: ExperimentConfig, out_dir: str | Path, *, resume: bool = False) -> dict:
    """Check everything, then run every (order, seed, method); returns results.json's content.

    The main process holds an exclusive lock on ``out_dir`` throughout (one run per dir)."""
    import contextlib

    from accelerate import PartialState

    main = PartialState().is_main_process
    with lock_run_dir(out_dir) if main else contextlib.nullcontext():
        session = Session(config, Path(out_dir), resume=resume)
        return session.run_all()

"""The per-task loop shared by every method (docs/algorithms.md §1).

For each (task order, seed, method) run: start from the same initial model, score it on every
task (the baseline row), then for each stage let the method learn it, score every task, save the
model at ``<i>_<task>/model/``. Everything a run needs is checked before any training starts.

Run dir layout (a contract other tools read)::

    config.json            the resolved config
    results.json           {"runs": [...]} (see results.py): deterministic, no wall-clock values
    timings.json           wall-clock seconds, throughput and peak memory of every run of results.json
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
from pathlib import Path
from typing import Any

import torch

from rational_lamol import task_baselines
from rational_lamol.config import ExperimentConfig, TrainingConfig, parse_config
from rational_lamol.evaluate import evaluate_task
from rational_lamol.methods import Learned, Method
from rational_lamol.modeling import (
    build_scratch_model,
    load_pretrained,
    load_saved,
    prepare_model_tokens,
    save_model,
    train_scratch_tokenizer,
)
from rational_lamol.rationale_sources import RationaleProvider
from rational_lamol.registry import available_methods, in_dependency_order, make_method
from rational_lamol.results import build_run_record, split_timings, write_results
from rational_lamol.stage import Resources, Stage
from rational_lamol.streams import STREAMS_VERSION
from rational_lamol.tasks import (
    TrainSequence,
    check_fits,
    load_tasks,
    special_ids,
    special_token_strings,
)
from rational_lamol.trainer import get_accelerator
from rationale_commons.errors import DataError, first_line
from rationale_commons.runtime import (
    atomic_dir,
    fault_point,
    is_complete,
    lock_run_dir,
    path_inside,
    peak_rss_mb,
    read_json,
    seed_everything,
    write_json_atomic,
)

log = logging.getLogger("rational_lamol")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


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


class DeadlineReached(Exception):
    """A run stopped before a stage that would have ended past the session's deadline; its
    finished stages are in ``run_dir``'s ``progress.json``."""

    def __init__(self, method: str, seed: int, order: list[str], run_dir: Path) -> None:
        super().__init__(f"{method} seed {seed} {'->'.join(order)}: stopped at the deadline")
        self.method, self.seed, self.order, self.run_dir = method, seed, list(order), run_dir


class Session:
    """One experiment: validated tasks and methods, the tokenizer, the shared-model caches.

    ``deadline`` (a :func:`time.monotonic` value) makes :meth:`run_one` stop between stages, with
    :class:`DeadlineReached`, once the next stage would probably end past it.
    """

    def __init__(self, config: ExperimentConfig, out_dir: Path, *, resume: bool = False,
                 deadline: float | None = None) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.deadline = deadline
        self._longest_stage = 0.0  # seconds: what the deadline check expects the next stage to take
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
        self.resources = Resources(
            tokenizer=self.tokenizer, ids=self.ids, tasks=self.tasks, accelerator=self.accelerator,
            max_length=config.model.max_length, sequences=self.sequences,
            rationales=RationaleProvider(config, self.tasks, self.out_dir, self.accelerator),
        )

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
        if not same_config(read_json(cfg_path), self.config):
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
        baselines_path = self.out_dir / task_baselines.FILE_NAME
        if not baselines_path.exists():  # seconds: a TF-IDF model per task
            write_json_atomic(baselines_path, task_baselines.task_baselines(self.tasks))

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
        with self.accelerator.autocast():  # the run's precision (bf16 on a GPU; a no-op in fp32)
            return [
                round(evaluate_task(model, self.tokenizer, self.tasks[t], self.ids,
                                    max_length=self.config.model.max_length, batch_size=tc.eval_batch_size,
                                    accelerator=self.accelerator), 4)
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

    def _stage_training(self, training: TrainingConfig, names: list[str]) -> TrainingConfig:
        """``training`` with the task's own ``epochs`` for a stage that learns one task that sets them."""
        epochs = self.config.task(names[0]).epochs if len(names) == 1 else None
        return training if epochs is None else training.model_copy(update={"epochs": epochs})

    def run_dir_for(self, method: Method, seed: int, order: list[str]) -> Path:
        return path_inside(self.out_dir, "-".join(order), f"seed{seed}", method.name)

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
        stages = method.stages(order)
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
            stage = Stage(seed=seed, order=tuple(order), index=index, task_names=tuple(names),
                          training=self._stage_training(training, names),
                          run_dir=run_dir, stage_dir=path_inside(run_dir, stage_name), resources=self.resources)
            self._check_deadline(method, seed, order)
            log.info(" stage %d/%d: %s", index + 1, len(stages), "+".join(names))
            learned = self._learn_stage(method, stage, model)
            model = learned.model
            t_eval = time.perf_counter()
            scores = self.score_all(model, order)
            log.info("  scores %s", dict(zip(order, scores, strict=True)))
            now = time.perf_counter()
            record = {"dir": stage_name, "tasks": names, "scores": scores, "seconds": now - t0,
                      "eval_seconds": now - t_eval, "peak_rss_mb": peak_rss_mb(), **learned.stats}
            if acc.is_main_process:
                save_model(acc.unwrap_model(model), self.tokenizer, stage.stage_dir / "model")
                write_json_atomic(stage.stage_dir / "stage.json", record)
                done.append(record)
                write_json_atomic(progress_path, progress)
                fault_point(f"stage-done:{method.name}:{index + 1}")  # tests: a kill between stages
            else:
                done.append(record)
            acc.wait_for_everyone()
            self._longest_stage = max(self._longest_stage, time.perf_counter() - t0)
        stages, stage_timings = split_timings([{k: v for k, v in s.items() if k != "scores"} for s in done])
        record = build_run_record(
            method=method.name, seed=seed, order=order, rel_dir=rel, rows=[s["scores"] for s in done],
            baseline=baseline,
            extra={"stages": stages, "method_options": method.options_dict(), "environment": self.environment},
        )
        timing = {"wall_seconds": round(time.perf_counter() - start, 2), "stages": stage_timings}
        if acc.is_main_process:
            write_json_atomic(timing_json, timing)
            write_json_atomic(run_json, record)
        return record, timing

    def _check_deadline(self, method: Method, seed: int, order: list[str]) -> None:
        """Raise :class:`DeadlineReached` when the next stage would end past ``deadline``, taking
        the longest stage so far as its length. The main process's clock decides for every
        process, so all of them stop before the same stage."""
        if self.deadline is None:
            return
        stop = [time.monotonic() + self._longest_stage > self.deadline]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            stop = broadcast_object_list(stop)
        if stop[0]:
            raise DeadlineReached(method.name, seed, order, self.run_dir_for(method, seed, order))

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

    def _learn_stage(self, method: Method, stage: Stage, model) -> Learned:
        """Stage 1 of a method that trains it like plain LAMOL reuses a cached task-1 model."""
        if stage.index != 0 or not method.shares_task1:
            return method.learn(stage, model)
        key = _hash({"seed": stage.seed, "task": stage.task_names, "streams": STREAMS_VERSION,
                     "model": self.config.model.model_dump(), "training": stage.training.model_dump(),
                     "data": [self.config.task(t).model_dump() for t in stage.task_names],
                     "data_seed": self.config.data_seed})
        folder = path_inside(self.shared_dir, "task1", f"{stage.task_names[0]}_seed{stage.seed}_{key}")
        if is_complete(folder):  # a folder without the marker was being written when a run died: absent
            try:
                shared, _ = load_saved(folder / "model")
                info = read_json(folder / "info.json")
            except DataError as exc:
                log.warning("  shared task-1 model unusable (%s); training it again", first_line(exc))
            else:
                log.info("  task-1 model shared from %s", folder.relative_to(self.out_dir))
                stats = {**info.get("stats", {}), "task1_shared_from": folder.relative_to(self.out_dir).as_posix()}
                return Learned(shared.to(self.accelerator.device).eval(), stats)
        learned = method.learn(stage, model)
        if self.accelerator.is_main_process:
            with atomic_dir(folder) as tmp:  # model and info.json appear together or not at all
                save_model(self.accelerator.unwrap_model(learned.model), self.tokenizer, tmp / "model")
                write_json_atomic(tmp / "info.json", {"trained_by": method.name, "stats": learned.stats})
        self.accelerator.wait_for_everyone()
        return learned


def same_config(saved: dict[str, Any], config: ExperimentConfig) -> bool:
    """Whether a run dir's ``config.json`` is ``config``. The saved one is read with today's
    defaults, so a setting added since (with a default that changes nothing) does not lock an
    older run dir out of ``--resume``."""
    try:
        then = parse_config(saved)
    except DataError:
        return False
    return json.loads(then.model_dump_json()) == json.loads(config.model_dump_json())


def run_experiment(config: ExperimentConfig, out_dir: str | Path, *, resume: bool = False) -> dict:
    """Check everything, then run every (order, seed, method); returns results.json's content.

    The main process holds an exclusive lock on ``out_dir`` throughout (one run per dir)."""
    import contextlib

    from rational_lamol.trainer import process_state

    main = process_state().is_main_process
    with lock_run_dir(out_dir) if main else contextlib.nullcontext():
        session = Session(config, Path(out_dir), resume=resume)
        return session.run_all()

"""The InvRat training game (Chang et al. 2020, §3.3; docs/algorithms.md §3).

Players are updated in turn following ``config.schedule`` (one player per
batch, cycled: the reference's 1 generator : 3 f_i : 3 f_e per 7 steps).
Several restarts are trained; the kept model is the (restart, epoch) with the
best dev accuracy of the environment-agnostic predictor f_i, among epochs
whose dev selection rate is within ``selection_tolerance`` of ``alpha``
(all epochs when none is); equal accuracies go to the lower dev loss of f_i.

Run dir: ``config.json`` (resolved), ``vocab.json``, ``labels.json``,
``envs.json`` (policy, names, counts), ``metrics.json`` (one record per
epoch, rewritten atomically), ``model.safetensors`` (the selected players),
``selection.json``, ``checkpoint.pt`` (everything needed to resume, written
after every epoch) and ``DONE`` once training finished.

Each epoch commits in one step: ``checkpoint.pt`` (atomic, holding the epoch records too) is
written first; ``model.safetensors``, ``selection.json`` and ``metrics.json`` follow from it, and a
resume rewrites them from the checkpoint, so a kill anywhere never records an epoch twice.
The run dir is locked for the whole of training (one process per dir).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from invrat.config import InvRatConfig
from invrat.embeddings import initial_embeddings
from invrat.encoder import ContextualWords
from invrat.environments import (
    dev_environments,
    environments_for,
    index_environments,
    places_unseen_examples,
    resolve_policy,
    split_by_correctness,
)
from invrat.losses import generator_objective
from invrat.model import (
    Generator,
    Predictor,
    WordFeatures,
    inference_rationale,
    make_embedding,
    predictor_input_mask,
    select,
)
from invrat.vocab import Batch, Encoded, Vocab, collate, encode
from rationale_commons.errors import DataError
from rationale_commons.records import Example, Splits
from rationale_commons.runtime import (
    atomic_file,
    autocast,
    choose_device,
    fault_point,
    load_tensors,
    lock_run_dir,
    read_json,
    run_dir_is_fresh,
    seed_everything,
    write_json_atomic,
)

log = logging.getLogger("invrat")

#: A dev set smaller than this gives dev accuracies too coarse to select a model by: a warning.
MIN_DEV_EXAMPLES = 10

_NO_DEV_ENVS = (
    "select_by='invariance' needs an environment on every dev example (environments 'column' with an env on "
    "each dev example, or the 'hash' rule); use select_by='accuracy'"
)
RUN_FILES = ("config.json", "vocab.json", "labels.json", "model.safetensors")


def build_players(
    config: InvRatConfig, vocab_size: int, n_labels: int, n_envs: int, init: torch.Tensor | ContextualWords | None
) -> nn.ModuleDict:
    """g, f_i, f_e, each with its own embedding layer (as in the reference; a frozen encoder is shared)."""
    if isinstance(init, ContextualWords):
        dim = init.embedding_dim
    else:
        dim = init.shape[1] if init is not None else config.embedding_dim

    def emb() -> WordFeatures:
        return make_embedding(vocab_size, dim, init, freeze=config.freeze_embeddings)

    fi = Predictor(emb(), config.hidden_dim, n_labels, 0, config.dropout)
    players = nn.ModuleDict(
        {
            "g": Generator(fi.embedding if config.share_embeddings else emb(), config.hidden_dim, config.dropout, config.alpha),
            "fi": fi,
            "fe": Predictor(emb(), config.hidden_dim, n_labels, max(1, n_envs), config.dropout),
        }
    )
    if config.env_residual:  # a correction to f_i's logits that starts at none
        nn.init.zeros_(players["fe"].head.weight)
        nn.init.zeros_(players["fe"].head.bias)
    return players


@dataclass
class Prepared:
    """A split as ids, label indices and env indices (envs only for training)."""

    encoded: list[Encoded]
    labels: list[int]
    envs: list[int] | None

    def batch(self, idx: Sequence[int]) -> Batch:
        return collate(
            [self.encoded[i] for i in idx],
            [self.labels[i] for i in idx],
            None if self.envs is None else [self.envs[i] for i in idx],
        )


def prepare(
    examples: Sequence[Example], vocab: Vocab, label_index: dict[str, int], config: InvRatConfig, envs: list[int] | None
) -> Prepared:
    unknown = sorted({ex.label for ex in examples} - set(label_index))
    if unknown:
        raise DataError(
            f"label(s) {unknown[:5]} do not occur in the training set (known: {sorted(label_index)})", field="label"
        )
    return Prepared(
        [encode(ex, vocab, max_len=config.max_len, max_query_len=config.max_query_len) for ex in examples],
        [label_index[ex.label] for ex in examples],
        envs,
    )


def length_sorted_batches(encoded: Sequence[Encoded], batch_size: int) -> list[list[int]]:
    """Index batches of similar length (less padding at inference), covering every index once."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def evaluate_players(
    players: nn.ModuleDict, data: Prepared, config: InvRatConfig, device: str, gold: Sequence[list[int] | None] | None = None,
    *, env_player: bool = True,
) -> dict[str, float]:
    """Dev accuracy and loss of f_i on the generator's hard rationale, selection rate, and token F1 when gold
    is known; with the dev environments (``data.envs``) also f_i's loss per environment and (when the env
    player is on) f_e's loss."""
    players.eval()
    correct, loss_sum, loss_e_sum, selected, doc_tokens = 0, 0.0, 0.0, 0.0, 0.0
    aware = env_player and data.envs is not None and players["fe"].n_envs > 1
    env_loss = torch.zeros(max(1, players["fe"].n_envs), dtype=torch.float64)
    env_loss_sq, env_count = torch.zeros_like(env_loss), torch.zeros_like(env_loss)
    f1s: list[float] = []
    for idx in length_sorted_batches(data.encoded, config.eval_batch_size):
        b = data.batch(idx).to(device)
        with autocast(device, config.precision):
            logits = players["g"](b.ids, b.lengths)
            z, _ = inference_rationale(logits.float(), b.doc_mask, selection=config.selection, alpha=config.alpha)
            zin = predictor_input_mask(z, b.doc_mask, b.real_mask)
            out = players["fi"](b.ids, b.lengths, zin, b.real_mask)
            if aware:
                out_e = players["fe"](b.ids, b.lengths, zin, b.real_mask, b.envs).float()
                if config.env_residual:
                    out_e = out_e + out.float()
                loss_e_sum += float(F.cross_entropy(out_e, b.labels, reduction="sum"))
        correct += int((out.argmax(-1) == b.labels).sum())
        losses = F.cross_entropy(out.float(), b.labels, reduction="none")
        loss_sum += float(losses.sum())
        if data.envs is not None:
            envs, per_example = b.envs.cpu(), losses.cpu().double()
            env_loss.index_add_(0, envs, per_example)
            env_loss_sq.index_add_(0, envs, per_example**2)
            env_count.index_add_(0, envs, torch.ones_like(per_example))
        selected += float(z.sum())
        doc_tokens += float(b.doc_mask.sum())
        if gold is not None:
            zc = z.cpu()
            for row, i in enumerate(idx):
                g = gold[i]
                if g is None:
                    continue
                n = data.encoded[i].n_doc
                pred = zc[row, :n].numpy() > 0.5
                truth = np.asarray(g[:n], dtype=bool)
                tp = float((pred & truth).sum())
                p = tp / pred.sum() if pred.sum() else 0.0
                r = tp / truth.sum() if truth.sum() else 0.0
                f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    players.train()
    n = max(1, len(data.labels))
    result = {"dev_acc": correct / n, "dev_loss": loss_sum / n, "dev_selection_rate": selected / max(1.0, doc_tokens)}
    if aware:
        result["dev_loss_e"] = loss_e_sum / n
    if data.envs is not None:
        count = env_count.clamp(min=1)
        mean = env_loss / count
        result["dev_loss_by_env"] = mean.tolist()
        # standard error of each environment's mean loss: how far the gap between two can move by chance
        variance = (env_loss_sq / count - mean**2).clamp(min=0) * count / (count - 1).clamp(min=1)
        result["dev_loss_se_by_env"] = (variance / count).sqrt().tolist()
    if f1s:
        result["dev_token_f1_truncated"] = float(np.mean(f1s))
    return result


def _player_step(
    player: str,
    players: nn.ModuleDict,
    opts: dict[str, torch.optim.Optimizer],
    b: Batch,
    config: InvRatConfig,
    device: str,
    temperature: float,
    lambda_diff: float,
    warmup: bool = False,
) -> dict[str, float]:
    """One coordinate-descent update of ``player`` on batch ``b``; returns the logged losses.

    ``warmup``: the predictors see the whole document (z = 1) and ``player`` must not be the generator.
    """
    budget = config.alpha if config.train_selection == "top_alpha" else None

    def draw_mask() -> tuple[torch.Tensor, torch.Tensor]:
        logits = players["g"](b.ids, b.lengths).float()
        return select(logits, b.doc_mask, train=True, gumbel=config.gumbel, temperature=temperature, top_alpha=budget)

    with autocast(device, config.precision):
        if warmup:
            z = b.doc_mask
        elif player == "g":
            z, probs = draw_mask()
        else:
            with torch.no_grad():
                z, _ = draw_mask()
        zin = predictor_input_mask(z, b.doc_mask, b.real_mask)
        logs: dict[str, float] = {}
        logits_i = None
        if player in ("g", "fi"):
            logits_i = players["fi"](b.ids, b.lengths, zin, b.real_mask).float()
            loss_i = F.cross_entropy(logits_i, b.labels)
            logs["loss_i"] = float(loss_i.detach())
        if player == "fe" or (player == "g" and lambda_diff > 0):
            logits_e = players["fe"](b.ids, b.lengths, zin, b.real_mask, b.envs).float()
            if config.env_residual:
                if logits_i is None:  # f_e's own step trains the correction only (after f_e: dropout draws stay in order)
                    with torch.no_grad():
                        logits_i = players["fi"](b.ids, b.lengths, zin, b.real_mask).float()
                logits_e = logits_e + logits_i
            loss_e = F.cross_entropy(logits_e, b.labels)
            logs["loss_e"] = float(loss_e.detach())
        if player == "g":
            terms = generator_objective(
                loss_agnostic=loss_i,
                loss_aware=loss_e if lambda_diff > 0 else loss_i.detach(),
                z=z,
                mask=b.doc_mask,
                alpha=config.alpha,
                lambda_diff=lambda_diff,
                lambda_sparsity=config.lambda_sparsity,
                lambda_continuity=config.lambda_continuity,
                penalty=config.penalty,
                rate_of=None if budget is None else probs,
            )
            loss = terms["total"]
            logs.update({f"gen_{k}": float(v.detach()) for k, v in terms.items()})
        else:
            loss = loss_i if player == "fi" else loss_e
    for opt in opts.values():
        opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(_own_parameters(players, player), config.grad_clip)
    opts[player].step()
    return logs


def _own_parameters(players: nn.ModuleDict, name: str) -> list[nn.Parameter]:
    """The trainable parameters a player updates (a shared embedding belongs to f_i, not to g)."""
    params = [p for p in players[name].parameters() if p.requires_grad]
    if name == "g":
        borrowed = {id(p) for p in players["fi"].parameters()}
        params = [p for p in params if id(p) not in borrowed]
    return params


def _optimizers(players: nn.ModuleDict, config: InvRatConfig) -> dict[str, torch.optim.Optimizer]:
    return {
        name: torch.optim.Adam(_own_parameters(players, name), lr=config.lr, weight_decay=config.weight_decay)
        for name in ("g", "fi", "fe")
    }


def _state_for_file(players: nn.ModuleDict) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in players.state_dict().items()}


def _temperature(config: InvRatConfig, epoch: int) -> float:
    return max(config.min_temperature, config.temperature * config.temperature_decay**epoch)


def _diff_weight(lambda_diff: float, game_epoch: int, ramp_epochs: int) -> float:
    """lambda_diff for a game epoch (0-based): linear ramp over ``ramp_epochs``, then constant."""
    if ramp_epochs <= 0:
        return lambda_diff
    return lambda_diff * min(1.0, max(0, game_epoch + 1) / (ramp_epochs + 1))


def _atomic_torch_save(obj: object, path: Path) -> None:
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def _publish_selected(out_dir: Path, players: nn.ModuleDict, best: dict) -> None:
    """The selected players and their record (``model.safetensors``, then ``selection.json``)."""
    with atomic_file(out_dir / "model.safetensors") as tmp:
        save_file(_state_for_file(players), str(tmp))
    write_json_atomic(out_dir / "selection.json", best)


def _metrics_at_checkpoint(out_dir: Path, ckpt: dict) -> list[dict]:
    """The epoch records up to the checkpoint's epoch: the checkpoint's own copy (older checkpoints
    lack it: then metrics.json cut at that epoch, so a redone epoch is not recorded twice)."""
    if "metrics" in ckpt:
        return list(ckpt["metrics"])
    last = (ckpt["restart"], ckpt["epoch"])
    return [m for m in read_json(out_dir / "metrics.json") if (m["restart"], m["epoch"]) <= last]


def _split_dev(train: list[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """(train, dev) when the data has no val split: 10% of train, carved deterministically.
    Refused when no example could be held out (the dev set would be the training set)."""
    if len(train) < 2:
        raise DataError(
            f"the training split has {len(train)} example(s) and there is no val split: model selection needs "
            "held-out examples (give a val split, or at least 2 training examples)", field="val"
        )
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    cut = max(1, len(train) // 10)
    return [train[i] for i in order[cut:]], [train[i] for i in order[:cut]]


def _eligible(metrics: dict[str, float], config: InvRatConfig) -> bool:
    tol = config.selection_tolerance
    return tol is None or abs(metrics["dev_selection_rate"] - config.alpha) <= tol


def _selection_key(record: dict, select_by: str = "accuracy") -> tuple[bool, float, float]:
    """Eligible first; then (``accuracy``) the best dev accuracy of f_i (the paper), ties to the lower dev
    loss of f_i, or (``invariance``) the lower dev objective (``_dev_objective``).

    Dev accuracy saturates at the label noise on easy data, where the first epoch reaching it would
    otherwise win over a generator that went on improving.
    """
    if select_by == "invariance":
        return record["eligible"], -record.get("dev_objective", math.inf), 0.0
    return record["eligible"], record["dev_acc"], -record.get("dev_loss", math.inf)  # no dev_loss: older runs


def _dev_objective(record: dict, gap_weight: float, gap_slack: float = 0.0) -> float | None:
    """Dev loss of f_i + gap_weight * the gap between the worst and best dev environment's loss of f_i;
    None without dev envs.

    ``gap_slack``: standard errors of that gap forgiven, ``max(0, gap - gap_slack * SE)``. An invariant
    rationale's gap is not 0 on a finite dev set but the chance difference of two sample means, and
    a rationale leaning on a spurious feature can close that chance gap instead of widening it.

    Not the game's own h(L_i - L_e): that reads f_e, which lags behind the generator (measured on the
    synthetic budget setting, where it ranked an epoch holding the spurious token first).
    """
    by_env = record.get("dev_loss_by_env")
    if not by_env:
        return None
    worst, best = max(range(len(by_env)), key=by_env.__getitem__), min(range(len(by_env)), key=by_env.__getitem__)
    gap = by_env[worst] - by_env[best]
    se_by_env = record.get("dev_loss_se_by_env")  # absent in runs from before it was logged
    if gap_slack and se_by_env:
        gap = max(0.0, gap - gap_slack * math.hypot(se_by_env[worst], se_by_env[best]))
    return record["dev_loss"] + gap_weight * gap


def _fit_reference_envs(
    data: Prepared, vocab_size: int, n_labels: int, config: InvRatConfig, device: str,
    init: torch.Tensor | ContextualWords | None,
) -> list[str]:
    """``infer`` policy: a plain rationalizer (one environment) trained briefly; envs from its correctness."""
    ref_cfg = config.model_copy(update={"use_env_player": False, "lambda_diff": 0.0})
    seed_everything(config.seed + 7919)
    players = build_players(ref_cfg, vocab_size, n_labels, 1, init).to(device)
    opts = _optimizers(players, ref_cfg)
    sched = ref_cfg.active_schedule()
    single = Prepared(data.encoded, data.labels, [0] * len(data.labels))
    step = 0
    for epoch in range(config.warmup_epochs + config.infer_epochs):
        rng = random.Random(config.seed * 7919 + epoch)
        order = list(range(len(single.labels)))
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            b = single.batch(order[start : start + config.batch_size]).to(device)
            if epoch < config.warmup_epochs:
                _player_step("fi", players, opts, b, ref_cfg, device, 1.0, 0.0, warmup=True)
                continue
            _player_step(sched[step % len(sched)], players, opts, b, ref_cfg, device, _temperature(config, epoch), 0.0)
            step += 1
    players.eval()
    correct = [False] * len(single.labels)
    with torch.no_grad():
        for idx in length_sorted_batches(single.encoded, config.eval_batch_size):
            b = single.batch(idx).to(device)
            logits = players["g"](b.ids, b.lengths).float()
            z, _ = inference_rationale(logits, b.doc_mask, selection=config.selection, alpha=config.alpha)
            pred = players["fi"](b.ids, b.lengths, predictor_input_mask(z, b.doc_mask, b.real_mask), b.real_mask).argmax(-1)
            for row, i in enumerate(idx):
                correct[i] = bool(pred[row] == b.labels[row])
    return split_by_correctness(correct)


def _check_run_dir(out_dir: Path, resume: bool, config: InvRatConfig) -> dict | None:
    """Returns the checkpoint to resume from (or None to start fresh)."""
    if not resume:
        if not run_dir_is_fresh(out_dir):
            raise DataError("run dir exists and is not empty; pass --resume to continue it or choose a new --out", path=out_dir)
        return None
    if run_dir_is_fresh(out_dir):
        return None
    if not (out_dir / "config.json").is_file():
        raise DataError("not an invrat run dir (no config.json); cannot resume", path=out_dir)
    # a field added since the run was written counts as its default
    saved = json.loads(InvRatConfig().model_dump_json()) | read_json(out_dir / "config.json")
    current = json.loads(config.model_dump_json())
    ignore = {"progress", "device", "num_threads", "eval_batch_size"}
    if config.restarts == 1 and current["epochs"] >= saved.get("epochs", 0):
        ignore.add("epochs")  # a single-restart run may be trained on for more epochs
    diff = sorted(k for k in current if k not in ignore and saved.get(k) != current[k])
    if diff:
        raise DataError(f"--resume with a different config (fields {diff}); use the run's own config.json", path=out_dir)
    ckpt = out_dir / "checkpoint.pt"
    if not ckpt.is_file():
        return None
    return load_tensors(ckpt)  # data only: a checkpoint never runs code


def _asks_more_epochs(out_dir: Path, config: InvRatConfig) -> bool:
    saved = read_json(out_dir / "config.json")
    return config.epochs > saved.get("epochs", config.epochs)


def train_invrat(splits: Splits, config: InvRatConfig, out_dir: str | Path, *, resume: bool = False) -> Path:
    """Train InvRat on ``splits`` (train; val for selection) and write the run dir. Returns it.

    ``resume=True`` continues a killed run from its last finished epoch (a
    finished run returns at once, unless ``config.epochs`` grew: a single-restart run then trains
    on from its last epoch, and model selection goes on over the new epochs).

    The run dir is locked while training: a second process gets a :class:`DataError`.
    """
    out_dir = Path(out_dir)
    with lock_run_dir(out_dir):
        return _train_locked(splits, config, out_dir, resume=resume)


def _train_locked(splits: Splits, config: InvRatConfig, out_dir: Path, *, resume: bool) -> Path:
    if resume and (out_dir / "DONE").is_file() and not _asks_more_epochs(out_dir, config):
        return out_dir
    train = list(splits.train)
    if not train:
        raise DataError("the training split is empty", field="train")
    val = list(splits.val)
    if not val:  # selection needs held-out data
        train, val = _split_dev(train, config.seed)
    if len(val) < MIN_DEV_EXAMPLES:
        log.warning("invrat: warning: the dev set has %d example(s) (fewer than %d): its accuracy, which selects "
                    "the model, is too coarse to trust", len(val), MIN_DEV_EXAMPLES)
    ckpt = _check_run_dir(out_dir, resume, config)
    (out_dir / "DONE").unlink(missing_ok=True)  # only after the config check: a refused run stays finished
    out_dir.mkdir(parents=True, exist_ok=True)

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = choose_device(config.device)
    labels = sorted({ex.label for ex in train})
    label_index = {lab: i for i, lab in enumerate(labels)}
    vocab = Vocab.build(train, lowercase=config.lowercase, min_count=config.min_count, max_vocab=config.max_vocab, max_len=config.max_len)
    init, emb_info = initial_embeddings(config, vocab)
    train_data = prepare(train, vocab, label_index, config, None)
    val_data = prepare(val, vocab, label_index, config, None)
    gold = [ex.rationale for ex in val] if any(ex.rationale is not None for ex in val) else None

    policy = resolve_policy(train, config)
    if config.select_by == "invariance" and not places_unseen_examples(config, policy):
        raise DataError(_NO_DEV_ENVS, field="select_by")
    if ckpt is not None:
        env_info = read_json(out_dir / "envs.json")
        env_names = env_info["per_example"]
    else:
        env_names = environments_for(train, config, policy)
        if env_names is None:
            env_names = _fit_reference_envs(train_data, len(vocab), len(labels), config, device, init)
    env_idx, env_order = index_environments(env_names)
    train_data.envs = env_idx
    val_data.envs = dev_environments(val, config, policy, env_order)
    if config.select_by == "invariance" and val_data.envs is None:
        raise DataError(_NO_DEV_ENVS, field="select_by")
    # a resumed run keeps its config, but records more epochs when they were asked for
    write_json_atomic(out_dir / "config.json", json.loads(config.model_dump_json()))
    if ckpt is None:
        vocab.save(out_dir / "vocab.json")
        write_json_atomic(out_dir / "labels.json", labels)
        write_json_atomic(
            out_dir / "envs.json",
            {"policy": policy, "names": env_order, "counts": {e: env_names.count(e) for e in env_order},
             "env_player": config.use_env_player and len(env_order) > 1, "per_example": env_names, "embedding": emb_info},
            indent=None,
        )
        write_json_atomic(out_dir / "metrics.json", [])

    metrics: list[dict] = _metrics_at_checkpoint(out_dir, ckpt) if ckpt else []
    if ckpt:
        write_json_atomic(out_dir / "metrics.json", metrics)
    best = ckpt["best"] if ckpt else None
    start_restart = ckpt["restart"] if ckpt else 0
    # With one environment f_e sees a constant one-hot: L_i - L_e carries no signal, so f_e is not trained.
    env_player = config.use_env_player and len(env_order) > 1
    lambda_diff = config.lambda_diff if env_player else 0.0
    gap_weight = (config.lambda_diff if config.selection_lambda is None else config.selection_lambda) if env_player else 0.0
    schedule = config.active_schedule() if env_player else [p for p in config.schedule if p != "fe"]
    batches_per_epoch = math.ceil(len(train_data.labels) / config.batch_size)

    for restart in range(start_restart, config.restarts):
        resuming = ckpt is not None and ckpt["restart"] == restart
        seed_everything(config.seed + restart)
        players = build_players(config, len(vocab), len(labels), len(env_order), init).to(device)
        opts = _optimizers(players, config)
        start_epoch, step = 0, 0
        if resuming:
            players.load_state_dict(ckpt["players"])
            for name, opt in opts.items():
                opt.load_state_dict(ckpt["optimizers"][name])
            start_epoch, step = ckpt["epoch"] + 1, ckpt["step"]
            torch.set_rng_state(ckpt["torch_rng"])
            cuda_rng = ckpt.get("cuda_rng")  # dropout and noise draws on the GPU; only on as many GPUs as saved them
            if cuda_rng is not None and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda_rng)
            if best is not None and (best["restart"], best["epoch"]) == (restart, ckpt["epoch"]):
                _publish_selected(out_dir, players, best)  # a kill may have come before it was published
        players.train()
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            temperature = _temperature(config, epoch)
            rng = random.Random((config.seed + restart) * 100003 + epoch)
            order = list(range(len(train_data.labels)))
            rng.shuffle(order)
            sums: dict[str, list[float]] = {}
            bar = tqdm(
                range(batches_per_epoch), desc=f"restart {restart + 1}/{config.restarts} epoch {epoch + 1}/{config.epochs}",
                disable=not config.progress, leave=False,
            )
            warmup = epoch < config.warmup_epochs
            diff_weight = _diff_weight(lambda_diff, epoch - config.warmup_epochs, config.diff_warmup_epochs)
            for k in bar:
                idx = order[k * config.batch_size : (k + 1) * config.batch_size]
                if warmup:  # both predictors on every batch, on the whole document
                    b = train_data.batch(idx).to(device)
                    logs = _player_step("fi", players, opts, b, config, device, temperature, 0.0, warmup=True)
                    if env_player:
                        logs.update(_player_step("fe", players, opts, b, config, device, temperature, 0.0, warmup=True))
                else:
                    player = schedule[step % len(schedule)]
                    if player == "g" and config.generator_batch_size:  # the generator's own, larger batch
                        idx = rng.sample(order, min(len(order), config.generator_batch_size))
                    b = train_data.batch(idx).to(device)
                    logs = _player_step(player, players, opts, b, config, device, temperature, diff_weight)
                    step += 1
                for key, v in logs.items():
                    sums.setdefault(key, []).append(v)
            record = {
                "restart": restart, "epoch": epoch, "step": step, "temperature": temperature, "warmup": warmup,
                "lambda_diff": diff_weight,
                **{f"train_{k}": float(np.mean(v)) for k, v in sums.items()},
                **evaluate_players(players, val_data, config, device, gold, env_player=env_player),
                "seconds": time.perf_counter() - t0,
            }
            objective = _dev_objective(record, gap_weight, config.selection_gap_slack)  # 0 with the env player off: no env information at all
            if objective is not None:
                record["dev_objective"] = objective
            record["eligible"] = not warmup and _eligible(record, config)
            improved = best is None or _selection_key(record, config.select_by) > _selection_key(best, config.select_by)
            if improved:
                best = {k: record[k] for k in ("restart", "epoch", "eligible", "dev_acc", "dev_loss", "dev_objective", "dev_selection_rate") if k in record}
            record["selected_so_far"] = dict(best)
            metrics.append(record)
            # the commit point of the epoch; everything below is derived from it (and redone on resume)
            _atomic_torch_save(
                {"restart": restart, "epoch": epoch, "step": step, "players": players.state_dict(),
                 "optimizers": {n: o.state_dict() for n, o in opts.items()}, "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, "best": best,
                 "metrics": metrics},
                out_dir / "checkpoint.pt",
            )
            fault_point(f"invrat:epoch-saved:{restart}:{epoch}")
            if improved:
                _publish_selected(out_dir, players, best)
            write_json_atomic(out_dir / "metrics.json", metrics)
            if config.progress:
                tqdm.write(
                    f"restart {restart} epoch {epoch}: dev_acc {record['dev_acc']:.3f} "
                    f"selection {record['dev_selection_rate']:.3f}"
                    + (f" token_f1 {record['dev_token_f1_truncated']:.3f}" if "dev_token_f1_truncated" in record else "")
                    + f" ({record['seconds']:.0f}s)"
                )
        ckpt = None
    (out_dir / "DONE").write_text("ok\n", encoding="utf-8")
    return out_dir

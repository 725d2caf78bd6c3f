"""The label ceiling of InvRat's predictor: f_i alone, reading every document word.

No generator and no game: f_i (the library's ``Predictor``, with the config's word features,
sizes, lr and batch) trains on whole documents (the first ``max_len`` words, z = 1), dev accuracy
picks the epoch, and the test split gives accuracy and macro F1. A predictor reading a rationale
sees a fraction of these words, so this bounds what the game's f_i can reach with the same
capacity. On ERASER Movies it tells "the predictor is too weak" from "the rationale misses the
evidence".

Frozen contextual features (``embedding = "minilm"``) do not change in training, so they are
computed once: each word occurrence becomes a row of a frozen table (one encoder pass per document,
not one per epoch).

    python benchmarks/bench_invrat_label_ceiling.py [--data ../shared/data/eraser/movies]
        [--config benchmarks/invrat_movies.toml] [--epochs 10] [--set KEY=VALUE ...] [--json OUT]

Writes benchmarks/results/invrat_label_ceiling/<task>_<embedding>.json (or --json).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from invrat import load_config
from invrat.data import Prepared, length_sorted_batches, prepare
from invrat.embeddings import initial_embeddings
from invrat.encoder import ContextualWords
from invrat.model import BagOfWords, Predictor, make_embedding
from invrat.vocab import Encoded, Vocab
from rationale_commons.loaders import load_data
from rationale_commons.metrics.eraser import classification_report
from rationale_commons.runtime import (
    autocast,
    choose_device,
    machine_info,
    seed_everything,
    write_json_atomic,
)

from common import BENCHMARKS, SHARED_DATA, format_overrides, parse_override, result_path

HERE = Path(__file__).resolve().parent


def occurrence_table(words: ContextualWords, splits: list[Prepared], batch_size: int, device: str) -> torch.Tensor:
    """Encode every document once; rewrite each split's ids to index its words' rows in the returned
    (1 + occurrences, D) table (row 0: padding)."""
    rows, used = [torch.zeros(1, words.embedding_dim, device=device)], 1
    with torch.no_grad():
        for data in splits:
            new_ids: list[list[int] | None] = [None] * len(data.encoded)
            for idx in length_sorted_batches(data.encoded, batch_size):
                feats = words(data.batch(idx).ids.to(device)).float()
                for row, i in enumerate(idx):
                    n = len(data.encoded[i].ids)
                    rows.append(feats[row, :n])
                    new_ids[i] = list(range(used, used + n))
                    used += n
            data.encoded = [Encoded(ids, enc.n_doc) for ids, enc in zip(new_ids, data.encoded, strict=True)]
    return torch.cat(rows)


def evaluate(fi: Predictor, data: Prepared, batch_size: int, device: str, precision: str) -> tuple[list[int], float]:
    """Predicted label indices (in order) and mean cross-entropy."""
    fi.eval()
    preds, loss = [0] * len(data.labels), 0.0
    with torch.no_grad(), autocast(device, precision):
        for idx in length_sorted_batches(data.encoded, batch_size):
            b = data.batch(idx).to(device)
            logits = fi(b.ids, b.lengths, b.real_mask, b.real_mask).float()  # z = 1: every word shown
            loss += float(F.cross_entropy(logits, b.labels, reduction="sum"))
            for row, i in enumerate(idx):
                preds[i] = int(logits[row].argmax())
    fi.train()
    return preds, loss / max(1, len(data.labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "eraser" / "movies")
    parser.add_argument("--config", type=Path, default=BENCHMARKS / "invrat_movies.toml")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--set", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the config file, e.g. --set embedding=minilm")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    config = load_config(args.config, progress=False, **dict(args.set))
    if config.runtime.num_threads:
        torch.set_num_threads(config.runtime.num_threads)
    splits = load_data(str(args.data))
    task = splits.name or args.data.name
    train, val, test = list(splits.train), list(splits.val), list(splits.test)
    vocab = Vocab.build(train, lowercase=config.data.lowercase, min_count=config.data.min_count, max_vocab=config.data.max_vocab,
                        max_len=config.data.max_len)
    labels = sorted({ex.label for ex in train})
    index = {label: i for i, label in enumerate(labels)}
    data = [prepare(split, vocab, index, config, None) for split in (train, val, test)]
    init, _ = initial_embeddings(config, vocab)
    device = choose_device(config.runtime.device)
    start = time.perf_counter()
    if isinstance(init, ContextualWords):
        with autocast(device, config.runtime.precision):
            init = occurrence_table(init.to(device), data, config.runtime.eval_batch_size, device)
    feature_seconds = time.perf_counter() - start

    seed_everything(config.game.seed)
    dim = init.shape[1] if init is not None else config.players.embedding_dim
    rows = init.shape[0] if init is not None else len(vocab)
    bag_of_words = config.players.predictor == "bag_of_words"
    features = "bag_of_words" if bag_of_words else config.players.embedding  # names the result file
    if bag_of_words:  # a weight per (word, label): no word features
        fi = BagOfWords(len(vocab), len(labels), 0).to(device)
    else:
        fi = Predictor(make_embedding(rows, dim, init, freeze=config.players.freeze_embeddings), config.players.hidden_dim,
                       len(labels), 0, config.players.dropout).to(device)
    params = [p for p in fi.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.game.lr, weight_decay=config.game.weight_decay)
    epochs, best, best_state = [], None, None
    for epoch in range(args.epochs):
        start = time.perf_counter()
        order = list(range(len(data[0].labels)))
        random.Random(config.game.seed * 100003 + epoch).shuffle(order)
        losses = []
        for k in range(0, len(order), config.game.batch_size):
            b = data[0].batch(order[k : k + config.game.batch_size]).to(device)
            with autocast(device, config.runtime.precision):
                logits = fi(b.ids, b.lengths, b.real_mask, b.real_mask)
            loss = F.cross_entropy(logits.float(), b.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.game.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
        preds, dev_loss = evaluate(fi, data[1], config.runtime.eval_batch_size, device, config.runtime.precision)
        record = {"epoch": epoch, "train_loss": sum(losses) / len(losses), "dev_loss": dev_loss,
                  "dev_acc": sum(p == y for p, y in zip(preds, data[1].labels, strict=True)) / len(preds),
                  "seconds": round(time.perf_counter() - start, 1)}
        epochs.append(record)
        print(json.dumps(record), flush=True)
        if best is None or (record["dev_acc"], -dev_loss) > (best["dev_acc"], -best["dev_loss"]):
            best, best_state = record, {k: v.clone() for k, v in fi.state_dict().items()}
    fi.load_state_dict(best_state)
    preds, _ = evaluate(fi, data[2], config.runtime.eval_batch_size, device, config.runtime.precision)
    report = classification_report([ex.label for ex in test], [labels[p] for p in preds])
    result = {
        "benchmark": f"label ceiling of InvRat's f_i on {task}: whole documents (first max_len words), no rationale",
        "command": f"python benchmarks/bench_invrat_label_ceiling.py --data {args.data} --config {args.config} "
        f"--epochs {args.epochs}" + format_overrides(args.set),
        "config": config.model_dump(mode="json"),
        "selected_epoch": best["epoch"],
        "test": {"accuracy": report["accuracy"], "macro_f1": report["macro avg"]["f1-score"], "n": len(test)},
        "epochs": epochs,
        "feature_seconds": round(feature_seconds, 1),
        "machine": machine_info(device),
    }
    out = args.json or result_path("invrat_label_ceiling", f"{task}_{features}")
    write_json_atomic(out, result)
    print(f"{task}, {features}: kept epoch {best['epoch']} (dev acc {best['dev_acc']:.3f}); "
          f"test accuracy {report['accuracy']:.3f}, macro F1 {report['macro avg']['f1-score']:.3f} -> {out}")


if __name__ == "__main__":
    main()

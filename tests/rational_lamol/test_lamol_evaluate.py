"""Greedy evaluation: a model that memorised its training answers scores 100 on them."""

from __future__ import annotations

import torch

from rational_lamol.config import ModelConfig, TaskConfig, TrainingConfig
from rational_lamol.evaluate import evaluate_task, greedy_decode
from rational_lamol.modeling import build_scratch_model
from rational_lamol.tasks import TaskData, special_ids
from rational_lamol.trainer import train_task
from rationale_commons.records import Splits


def test_greedy_eval_on_a_memorised_model(tiny_tokenizer, example_factory):
    torch.manual_seed(0)
    exs = [
        example_factory("the movie was great", "positive", idx="0"),
        example_factory("the plot was awful", "negative", idx="1"),
        example_factory("the acting was good", "positive", idx="2"),
        example_factory("the movie was bad bad", "negative", idx="3"),
    ]
    task = TaskData(config=TaskConfig(name="a", data="synthetic:sentiment", question="what is the sentiment ?"),
                    splits=Splits(name="a", train=exs, test=exs))
    ids = special_ids(tiny_tokenizer, ["a", "b"], shared_gen=True)
    model = build_scratch_model(ModelConfig(n_layer=1, n_head=2, n_embd=32, max_length=48, dropout=0.0),
                                len(tiny_tokenizer), eos_id=ids.eos, pad_id=ids.pad)
    seqs = task.sequences("train", tiny_tokenizer, 48, ids)
    cfg = TrainingConfig(epochs=80, lr=1e-2, batch_size=4, lm_lambda=0.0, device="cpu")
    stats = train_task(model, tiny_tokenizer, seqs, cfg)
    assert stats.steps == 80 and stats.final_loss < 0.05
    score, preds = evaluate_task(model, tiny_tokenizer, task, ids, max_length=48, batch_size=3, return_predictions=True)
    assert preds == ["positive", "negative", "positive", "negative"]
    assert score == 100.0
    # left padding does not change a prompt's answer: batch of one == batch of all
    prompts = [task.encode(e, tiny_tokenizer, 48, ids.ans).prompt_ids for e in exs]
    one = [greedy_decode(model, [p], max_new_tokens=3, eos_id=ids.eos, pad_id=ids.pad)[0] for p in prompts]
    assert greedy_decode(model, prompts, max_new_tokens=3, eos_id=ids.eos, pad_id=ids.pad) == one


def test_frozen_parameters_stay_out_of_the_optimizer(tiny_tokenizer, example_factory):
    """The hook rational methods rely on: requires_grad=False parameters are never updated, and
    callbacks see every optimizer step."""
    torch.manual_seed(0)
    ids = special_ids(tiny_tokenizer, ["a", "b"], shared_gen=True)
    model = build_scratch_model(ModelConfig(n_layer=2, n_head=2, n_embd=32, max_length=48), len(tiny_tokenizer),
                                eos_id=ids.eos, pad_id=ids.pad)
    frozen = list(model.transformer.h[0].parameters())
    for p in frozen:
        p.requires_grad_(False)
    before = [p.detach().clone() for p in frozen]
    task = TaskData(config=TaskConfig(name="a", data="synthetic:sentiment", question="what ?"),
                    splits=Splits(name="a", train=[example_factory("the movie was great", "positive")]))

    class Counter:
        starts = steps = 0

        def on_train_start(self, model):
            Counter.starts += 1

        def on_after_optimizer_step(self, model):
            Counter.steps += 1

    stats = train_task(model, tiny_tokenizer, task.sequences("train", tiny_tokenizer, 48, ids) * 4,
                       TrainingConfig(epochs=3, lr=1e-2, batch_size=2, weight_decay=0.5, device="cpu"),
                       callbacks=[Counter()])
    assert Counter.starts == 1 and Counter.steps == stats.steps == 6
    assert all(torch.equal(a, b) for a, b in zip(before, frozen, strict=True))


def test_training_leaves_no_model_or_optimizer_behind(tiny_tokenizer, example_factory):
    """A run trains many task models with one accelerator: none may stay referenced after its
    training (a 135M-parameter run grew by GBs per method until the kernel killed it)."""
    import gc
    import weakref

    from rational_lamol.trainer import get_accelerator

    exs = [example_factory("the movie was great", "positive", idx="0"),
           example_factory("the plot was awful", "negative", idx="1")]
    task = TaskData(config=TaskConfig(name="a", data="synthetic:sentiment", question="what is the sentiment ?"),
                    splits=Splits(name="a", train=exs, test=exs))
    ids = special_ids(tiny_tokenizer, ["a", "b"], shared_gen=True)
    cfg = TrainingConfig(epochs=1, lr=1e-3, batch_size=2, device="cpu")
    accelerator = get_accelerator(cfg)
    seqs = task.sequences("train", tiny_tokenizer, 48, ids)
    refs = []
    for _ in range(2):
        model = build_scratch_model(ModelConfig(n_layer=1, n_head=2, n_embd=32, max_length=48, dropout=0.0),
                                    len(tiny_tokenizer), eos_id=ids.eos, pad_id=ids.pad)
        train_task(model, tiny_tokenizer, seqs, cfg, accelerator=accelerator)
        refs.append(weakref.ref(model))
        del model
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert not accelerator._models and not accelerator._optimizers and not accelerator._schedulers

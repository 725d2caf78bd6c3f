"""Pair tasks: the generator reads the query (issue 21, item 1).

One document under different queries has different true rationales: the synthetic pair task's
documents hold two ``<object> <colour>`` statements and the query asks for one object's colour.
The glue words ("the", "is") are dropped: they carry no evidence, so labels alone cannot tell the
generator to take them, and the true rationale is the queried object and its colour.
"""

from __future__ import annotations

import pytest

from invrat import InvRatConfig, rationalize, train_invrat
from rationale_commons.records import Example, Splits
from rationale_commons.synthetic import make_task

GLUE = ("the", "is")


def _without_glue(examples: list[Example]) -> list[Example]:
    out = []
    for ex in examples:
        keep = [i for i, w in enumerate(ex.words) if w not in GLUE]
        out.append(ex.model_copy(update={"words": [ex.words[i] for i in keep],
                                         "rationale": [ex.rationale[i] for i in keep]}))
    return out


@pytest.fixture(scope="module")
def pairs() -> Splits:
    # 12 words, 2 statements: 8 words once the glue is dropped, 2 of them the queried statement
    splits = make_task("pair", seed=0, n_train=600, n_val=60, n_test=60, doc_words=(12, 12), pair_statements=2,
                       pair_question="colour")
    return Splits(train=_without_glue(splits.train), val=_without_glue(splits.val), test=_without_glue(splits.test))


def _train(splits: Splits, tmp_path, *, query_attention: bool):
    config = InvRatConfig(
        hidden_dim=32, embedding_dim=32, dropout=0.0, epochs=12, warmup_epochs=2, restarts=1, batch_size=32, lr=3e-3,
        schedule=["g", "fi"], alpha=0.24, selection="top_alpha", train_selection="top_alpha", gumbel=False,
        lambda_continuity=0.0, environments="single", query_attention=query_attention, progress=False, num_threads=1,
    )
    return train_invrat(splits, config, tmp_path / f"run_{query_attention}")


def _token_f1(examples: list[Example], masks: list[list[int]]) -> float:
    pairs = [(m, g) for ex, mask in zip(examples, masks, strict=True) for m, g in zip(mask, ex.rationale, strict=True)]
    tp = sum(m & g for m, g in pairs)
    return 2 * tp / (sum(m for m, _ in pairs) + sum(g for _, g in pairs))


def _asked_about_the_other_object(ex: Example) -> Example:
    """The same document, the query turned to the statement that is not the rationale."""
    objects = [w for w, g in zip(ex.words, ex.rationale, strict=True) if w in {"box", "ball", "cup", "hat", "car", "lamp"}]
    asked = next(w for i, w in enumerate(ex.words) if ex.rationale[i] and w in objects)
    other = next(w for w in objects if w != asked)
    return ex.model_copy(update={"query": ex.query.replace(asked, other),
                                 "rationale": [int(w == other or (i > 0 and ex.words[i - 1] == other))
                                               for i, w in enumerate(ex.words)]})


def test_query_aware_generator_finds_the_queried_statement(pairs, tmp_path) -> None:
    test = pairs.test
    flipped = [_asked_about_the_other_object(ex) for ex in test]
    aware = _train(pairs, tmp_path, query_attention=True)
    masks, masks_flipped = ([r.mask for r in rationalize(aware, exs)] for exs in (test, flipped))
    assert _token_f1(test, masks) >= 0.9
    assert _token_f1(flipped, masks_flipped) >= 0.9  # another query, another rationale, same document
    # the reference's document-then-query sequence: one rationale per document, whatever it is asked
    blind = _train(pairs, tmp_path, query_attention=False)
    masks, masks_flipped = ([r.mask for r in rationalize(blind, exs)] for exs in (test, flipped))
    assert sum(a == b for a, b in zip(masks, masks_flipped, strict=True)) >= 0.9 * len(test)
    assert _token_f1(test, masks) < 0.7


def test_a_run_from_before_query_attention_resumes_with_its_own_players(tmp_path) -> None:
    import json

    from invrat.model import is_query_aware
    from rationale_commons.runtime import load_safetensors

    splits = make_task("pair", seed=0, n_train=24, n_val=8, n_test=4, doc_words=(10, 12))
    old = InvRatConfig(hidden_dim=8, embedding_dim=8, epochs=1, warmup_epochs=0, restarts=1, progress=False,
                       num_threads=1, query_attention=False)
    run_dir = train_invrat(splits, old, tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    del config["players"]["query_attention"]  # as written before the option existed
    (run_dir / "config.json").write_text(json.dumps(config))
    train_invrat(splits, old.model_copy(update={"epochs": 2, "query_attention": True}), run_dir, resume=True)
    assert len(json.loads((run_dir / "metrics.json").read_text())) == 2
    assert not is_query_aware(load_safetensors(run_dir / "model.safetensors"))
    assert rationalize(run_dir, splits.test)

"""Fixtures for the LAMOL engine tests: a tokenizer trained on a few words, toy examples, tiny configs."""

from __future__ import annotations

import pytest
from rationale_commons.records import Example

WORDS = (
    "the movie was great awful fine plot acting good bad what is sentiment of this review "
    "positive negative yes no"
).split()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from rational_lamol.modeling import add_lamol_tokens, train_scratch_tokenizer
    from rational_lamol.tasks import special_token_strings

    texts = [" ".join(WORDS)] * 20 + ["the movie was great and the plot was good"] * 10
    tok = train_scratch_tokenizer(texts, vocab_size=300, special_tokens=special_token_strings(["a", "b"]))
    add_lamol_tokens(tok, ["a", "b"])
    return tok


def make_example(words: str, label: str, query: str | None = None, idx: str = "e0") -> Example:
    return Example(id=idx, words=words.split(), label=label, query=query)


@pytest.fixture
def example_factory():
    return make_example


def tiny_config_dict(tmp_path=None, **training) -> dict:
    """A config that trains a 1-layer GPT-2 on two tiny synthetic tasks in seconds."""
    return {
        "name": "tiny",
        "model": {"source": "gpt2-scratch", "n_layer": 1, "n_head": 2, "n_embd": 32, "vocab_size": 400,
                  "max_length": 80, "dropout": 0.0},
        "tasks": [
            {"name": "sentiment", "data": "synthetic:sentiment", "max_train": 12, "max_val": 4, "max_test": 6},
            {"name": "topic", "data": "synthetic:topic", "max_train": 12, "max_val": 4, "max_test": 6},
        ],
        "methods": ["finetune", "lamol", "multitask"],
        "training": {"epochs": 1, "lr": 1e-3, "batch_size": 4, "threads": 1, "gen_batch_size": 8,
                     "gamma": 0.5, **training},
    }


@pytest.fixture
def tiny_config():
    return tiny_config_dict

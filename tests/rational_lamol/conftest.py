"""Fixtures for the LAMOL engine tests: a tokenizer trained on a few words, toy examples, tiny configs,
tiny GPT-2 / Llama models built from configs."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from tiny_configs import tiny_config_dict

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


@pytest.fixture
def tiny_config():
    return tiny_config_dict


@pytest.fixture
def two_cpu_processes() -> tuple[list[str], dict[str, str]]:
    """Command prefix and environment that start a Python command as 2 processes of one gloo group
    on CPU. ``accelerate launch --cpu --num_processes 2`` starts a single process unless mpirun is
    installed, so torch's own launcher starts them, with ``ACCELERATE_USE_CPU`` set as
    ``accelerate launch --cpu`` sets it."""
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return launch, env


#: Vocabulary of the tiny models below (test modules draw token ids below it).
TINY_VOCAB = 64


def make_tiny_gpt2(
    n_layer: int = 2,
    n_head: int = 4,
    n_embd: int = 32,
    *,
    seed: int = 0,
    n_positions: int = 128,
    attn: str = "eager",
):
    """A randomly initialized GPT-2 (``seed`` fixes the weights); eager attention by default
    because the adapters capture attention maps."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(
        GPT2Config(
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            vocab_size=TINY_VOCAB,
            n_positions=n_positions,
            bos_token_id=0,
            eos_token_id=0,
            attn_implementation=attn,
        )
    )


def make_tiny_llama(
    n_layer: int = 2,
    n_head: int = 6,
    n_kv: int = 2,
    hidden: int = 48,
    *,
    seed: int = 0,
    attention_bias: bool = False,
    max_positions: int = 128,
    attn: str = "eager",
):
    """A randomly initialized Llama with ``n_kv`` KV heads (grouped-query when fewer than ``n_head``)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(
        LlamaConfig(
            num_hidden_layers=n_layer,
            num_attention_heads=n_head,
            num_key_value_heads=n_kv,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            vocab_size=TINY_VOCAB,
            max_position_embeddings=max_positions,
            attention_bias=attention_bias,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
            attn_implementation=attn,
        )
    )


@pytest.fixture
def tiny_gpt2():
    return make_tiny_gpt2


@pytest.fixture
def tiny_llama():
    return make_tiny_llama


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP spinning makes
    every small op ~100x slower: run the module single-threaded, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

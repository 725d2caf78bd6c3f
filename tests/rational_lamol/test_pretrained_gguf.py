"""A pretrained GGUF model (SmolLM2-135M, ../shared/models; skipped where it was not fetched) loads
as a dense, trainable model with LAMOL's tokens, drawn the same way every time, and its checkpoints
save and load back (transformers keeps GGUF weights packed, and refuses to save them, unless told)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

GGUF = Path(__file__).resolve().parents[3] / "shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"



def test_new_token_embeddings_are_the_same_draw_in_every_load(tmp_path, tiny_tokenizer, tiny_llama):
    """LAMOL's tokens grow the embeddings with a random draw; it comes from a fixed stream, so
    every run and resume of a pretrained model starts from the same weights."""
    from rational_lamol.config import ModelConfig
    from rational_lamol.modeling import load_pretrained

    base = tiny_llama()
    base.save_pretrained(tmp_path / "llama")
    tiny_tokenizer.save_pretrained(tmp_path / "llama")
    rows = []
    for _ in range(2):
        torch.manual_seed(len(rows))  # whatever the global generator holds
        model, tokenizer = load_pretrained(ModelConfig(source=str(tmp_path / "llama"), max_length=64), ["a", "b"])
        rows.append(model.get_input_embeddings().weight.detach().clone())
    assert rows[0].shape[0] == len(tokenizer) > base.get_input_embeddings().weight.shape[0]  # it grew
    assert torch.equal(rows[0], rows[1])


@pytest.mark.skipif(not GGUF.is_file(), reason="SmolLM2 GGUF not fetched (../shared/models/.../fetch.sh)")
def test_gguf_model_is_dense_trainable_and_saves(tmp_path, one_thread):
    pytest.importorskip("gguf")
    from rational_lamol.config import ModelConfig
    from rational_lamol.modeling import load_pretrained, load_saved, save_model

    model, tokenizer = load_pretrained(ModelConfig(source=str(GGUF), max_length=64), ["boolq", "movies"])
    assert all(p.is_floating_point() and p.requires_grad for p in model.parameters())
    assert "__ans__" in tokenizer.get_vocab()
    x = torch.randint(0, 1000, (1, 12))
    model(input_ids=x, labels=x).loss.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None
    save_model(model, tokenizer, tmp_path / "model")
    again, _ = load_saved(tmp_path / "model")
    with torch.no_grad():
        assert torch.allclose(model.eval()(input_ids=x).logits, again.eval()(input_ids=x).logits)


def _plain_pretrained(tmp_path, tiny_llama) -> Path:
    """A tiny Llama folder whose tokenizer has none of LAMOL's tokens and two end tokens."""
    from rational_lamol.modeling import train_scratch_tokenizer

    tokenizer = train_scratch_tokenizer(["the answer is yes and the movie was great"] * 20, vocab_size=300,
                                        special_tokens=["<|im_end|>"])
    tokenizer.eos_token = "<|im_end|>"
    folder = tmp_path / "plain"
    tiny_llama().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_token_init_and_eos_token_of_a_pretrained_model(tmp_path, tiny_llama, one_thread):
    from rational_lamol.config import ModelConfig
    from rational_lamol.modeling import load_pretrained

    folder = _plain_pretrained(tmp_path, tiny_llama)
    plain, _ = load_pretrained(ModelConfig(source=str(folder)), ["a"])
    model, tokenizer = load_pretrained(
        ModelConfig(source=str(folder), eos_token="<|endoftext|>", token_init={"__ans__": " the answer"}), ["a"])
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    pieces = tokenizer(" the answer", add_special_tokens=False)["input_ids"]
    ans = tokenizer.convert_tokens_to_ids("__ans__")
    for table, plain_table in ((model.get_input_embeddings().weight, plain.get_input_embeddings().weight),
                               (model.get_output_embeddings().weight, plain.get_output_embeddings().weight)):
        assert torch.allclose(table[ans], table[pieces].mean(dim=0))
        assert not torch.allclose(plain_table[ans], table[ans])  # the option changed the row
        gen = tokenizer.convert_tokens_to_ids("__gen__")
        assert torch.equal(plain_table[gen], table[gen])  # tokens not named keep transformers' draw


def test_token_init_and_eos_token_errors(tmp_path, tiny_llama, one_thread):
    from pydantic import ValidationError

    from rational_lamol.config import ModelConfig
    from rational_lamol.modeling import load_pretrained
    from rationale_commons.errors import DataError

    folder = _plain_pretrained(tmp_path, tiny_llama)
    with pytest.raises(DataError, match="not in the model's vocabulary"):
        load_pretrained(ModelConfig(source=str(folder), eos_token="<|nope|>"), ["a"])
    with pytest.raises(DataError, match="not LAMOL tokens new"):
        load_pretrained(ModelConfig(source=str(folder), token_init={"the": " answer"}), ["a"])
    with pytest.raises(ValidationError, match="pretrained model"):
        ModelConfig(eos_token="<|endoftext|>")

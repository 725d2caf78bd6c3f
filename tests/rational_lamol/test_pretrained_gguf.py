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

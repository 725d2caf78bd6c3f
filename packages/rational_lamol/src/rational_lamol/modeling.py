"""Loading any causal LM (hub id, local folder, GGUF file) or building a fresh small GPT-2 or Llama.

Models are loaded with ``attn_implementation="eager"`` so CCI can read attention weights.
A fresh model (``source = "gpt2-scratch"``, the offline default, or ``"llama-scratch"``) gets a
byte-level BPE tokenizer trained on the tasks' own text. LAMOL's special tokens are added to every
tokenizer and the embeddings resized to match.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from rational_lamol.config import ModelConfig
from rational_lamol.streams import random_stream
from rational_lamol.tasks import PAD_TOKEN, special_token_strings
from rationale_commons.errors import DataError, first_line
from rationale_commons.runtime import atomic_dir

log = logging.getLogger(__name__)

SCRATCH_EOS = "<|endoftext|>"


def cache_names(model) -> tuple[str, dict]:
    """The KV cache's name, as a forward argument and an output field (transformers 5 renamed
    ``past_key_values`` to ``cache``), and the kwargs that keep only the last position's logits."""
    params = inspect.signature(model.forward).parameters
    name = "cache" if "cache" in params else "past_key_values"
    return name, ({"logits_to_keep": 1} if "logits_to_keep" in params else {})


def train_scratch_tokenizer(texts: Iterable[str], *, vocab_size: int, special_tokens: Sequence[str]):
    """A byte-level BPE tokenizer trained on ``texts``, wrapped as ``GPT2TokenizerFast``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    bpe.train_from_iterator(
        list(texts), vocab_size=vocab_size, min_frequency=2, special_tokens=[SCRATCH_EOS, *special_tokens],
        show_progress=False,
    )
    tok = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=SCRATCH_EOS, bos_token=SCRATCH_EOS,
                            unk_token=SCRATCH_EOS, pad_token=PAD_TOKEN)
    tok.model_max_length = 1_000_000
    return tok


def add_lamol_tokens(tokenizer, task_names: Sequence[str]) -> int:
    """Add ``__ans__``, ``__pad__`` and the generation tokens; return how many were new."""
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    new = [t for t in special_token_strings(task_names) if t not in vocab]
    if new:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in new], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD_TOKEN
    if tokenizer.eos_token is None:
        raise DataError("the model's tokenizer has no EOS token; LAMOL needs one")
    return len(new)


def build_scratch_model(config: ModelConfig, vocab_size: int, *, eos_id: int, pad_id: int):
    """A fresh GPT-2 or Llama of the configured size (random init; seed first for repeatability)."""
    if config.source == "llama-scratch":
        return _scratch_llama(config, vocab_size, eos_id=eos_id, pad_id=pad_id)
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2Config(
        vocab_size=vocab_size,
        n_positions=config.max_length,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    return GPT2LMHeadModel(gpt2)


def _scratch_llama(config: ModelConfig, vocab_size: int, *, eos_id: int, pad_id: int):
    """A fresh Llama (rotary positions, RMSNorm, SwiGLU) with GPT-2's proportions: the MLP's
    hidden size is 8/3 of the width (as many weights as GPT-2's 4x MLP with two matrices) and the
    input and output embeddings are tied, as in GPT-2. Llama has no dropout outside attention."""
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.n_embd,
        intermediate_size=(8 * config.n_embd) // 3,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_head,
        max_position_embeddings=config.max_length,
        attention_dropout=config.dropout,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    return LlamaForCausalLM(llama)


#: What the Hugging Face hub accepts as a model id: ``name`` or ``owner/name``.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def looks_local(source: str) -> bool:
    """Whether a model source names a local path rather than a hub id (so a missing one is an
    error here, not a hub download attempt): it exists, starts like a path, or is no valid hub id."""
    return (Path(source).expanduser().exists() or source.startswith((".", "/", "~"))
            or not _HUB_ID.match(source) or source.count("/") > 1)


def _split_gguf(config: ModelConfig) -> tuple[str, str | None]:
    src = config.source
    if src.endswith(".gguf"):
        path = Path(src).expanduser()
        if not path.is_file():
            raise DataError("GGUF file not found", path=src)
        return str(path.parent), path.name
    if looks_local(src) and not Path(src).expanduser().is_dir():
        problem = "is a file, not a model folder" if Path(src).expanduser().exists() else "model folder does not exist"
        raise DataError(problem, path=src)
    return str(Path(src).expanduser()) if looks_local(src) else src, config.gguf_file


def _check_gguf(path: Path) -> None:
    """A file that does not start with GGUF's magic bytes is refused before transformers parses it."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror or exc})", path=path) from None
    if magic != b"GGUF":
        raise DataError("not a GGUF file (it does not start with the GGUF magic bytes)", path=path)


def load_pretrained(config: ModelConfig, task_names: Sequence[str]):
    """(model, tokenizer) from a hub id, a local folder or a GGUF file, with LAMOL tokens added."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, gguf_file = _split_gguf(config)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    if gguf_file:
        if Path(where).is_dir():
            _check_gguf(Path(where) / gguf_file)
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise DataError("loading a GGUF file needs the 'gguf' package: pip install 'rational-lamol[gguf]'") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(where, attn_implementation="eager", **kwargs,
                                                     **_dense_gguf(gguf_file))
    except OSError as exc:
        raise DataError(f"cannot load model {config.source!r}: {first_line(exc)}") from None
    except (ValueError, KeyError, RuntimeError, EOFError) as exc:  # a corrupt or foreign file in the folder
        raise DataError(f"cannot load model {config.source!r}: {first_line(exc)}") from None
    if gguf_file:
        _forget_quantization(model, config.source)
    if config.eos_token is not None:
        use_eos_token(tokenizer, config.eos_token)
    new_tokens = [t for t in special_token_strings(task_names) if t not in tokenizer.get_vocab()]
    with random_stream(0):  # the new tokens' embeddings: the same draw in every run and resume
        prepare_model_tokens(model, tokenizer, task_names)
    if config.token_init:
        init_tokens_from_text(model, tokenizer, config.token_init, new_tokens)
    return model, tokenizer


def use_eos_token(tokenizer, token: str) -> None:
    """Make ``token`` (already in the vocabulary) the EOS that ends every LAMOL sequence."""
    if token not in tokenizer.get_vocab():
        raise DataError(f"model.eos_token {token!r} is not in the model's vocabulary")
    tokenizer.eos_token = token


def init_tokens_from_text(model, tokenizer, texts: dict[str, str], new_tokens: Sequence[str]) -> None:
    """Start each LAMOL token of ``texts`` at the mean embedding of its text's pieces, input and
    output side (a tied head shares the row). A pretrained model then reads, and predicts, e.g.
    ``__ans__`` much as it would ``" Answer:"``, which a few hundred training steps cannot teach a
    token drawn at random."""
    import torch

    unknown = sorted(set(texts) - set(new_tokens))
    if unknown:
        raise DataError(f"model.token_init: {unknown} are not LAMOL tokens new to this vocabulary "
                        f"(new: {', '.join(new_tokens)})")
    tables = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight.data_ptr() != tables[0].data_ptr():
        tables.append(output.weight)
    with torch.no_grad():
        for token, text in texts.items():
            pieces = tokenizer(text, add_special_tokens=False)["input_ids"]
            row = tokenizer.convert_tokens_to_ids(token)
            for table in tables:
                table[row] = table[pieces].mean(dim=0)


def _dense_gguf(gguf_file: str | None) -> dict:
    """``from_pretrained`` options that unpack a GGUF file's weights into a dense model: LAMOL
    trains every weight, and transformers otherwise keeps them in (frozen) GGUF blocks."""
    if not gguf_file:
        return {}
    from transformers import GgufConfig

    return {"quantization_config": GgufConfig(gguf_file=gguf_file, dequantize=True)}


def _forget_quantization(model, source: str) -> None:
    """A dequantized GGUF model is a plain dense model: drop the quantizer so it trains and saves
    as one (``save_pretrained`` refuses a model that still names a GGUF quantizer)."""
    not_dense = [n for n, p in model.named_parameters() if not p.is_floating_point()]
    if not_dense:
        raise DataError(f"cannot load model {source!r}: GGUF weights left packed ({not_dense[0]}, ...); "
                        "this architecture cannot be trained from a GGUF file, use its Hugging Face folder")
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def prepare_model_tokens(model, tokenizer, task_names: Sequence[str]) -> None:
    """Add LAMOL's tokens and grow the embeddings when the tokenizer outgrew them."""
    add_lamol_tokens(tokenizer, task_names)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id


def load_saved(folder: str | Path):
    """(model, tokenizer) from one of our checkpoints (``<i>_<task>/model``): safetensors and JSON
    only (never a pickle), and a folder that does not load is one :class:`DataError` naming it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / "model.safetensors").is_file() and not (folder / "model.safetensors.index.json").is_file():
        raise DataError("no model.safetensors (an incomplete or foreign model folder)", path=folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager", use_safetensors=True)
    except Exception as exc:  # corrupt weights, JSON or tokenizer files all end here: name the folder
        raise DataError(f"model folder does not load ({first_line(exc)})", path=folder) from None
    return model, tokenizer


def save_model(model, tokenizer, folder: str | Path) -> None:
    """``save_pretrained`` of the model and its tokenizer, atomically (see ``atomic_dir``)."""
    with atomic_dir(folder) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))


"""The tiny two-task LAMOL experiment that several tests run: a 1-block GPT-2 learning synthetic
sentiment, then topic, in seconds on one CPU thread (``pythonpath = ["tests"]``)."""

from __future__ import annotations

from collections.abc import Sequence


def tiny_lamol_toml(name: str, methods: Sequence[str] = ("lamol",), *, max_train: int = 12) -> str:
    """The experiment's TOML; with ``gamma = 0.5`` LAMOL replays ``max_train / 2`` pseudo-samples."""
    method_list = ", ".join(f'"{method}"' for method in methods)
    tasks = "".join(
        f'[[tasks]]\nname = "{task}"\ndata = "synthetic:{task}"\nmax_train = {max_train}\nmax_val = 4\nmax_test = 6\n'
        for task in ("sentiment", "topic")
    )
    return f"""name = "{name}"
methods = [{method_list}]
seeds = [0]
[model]
source = "gpt2-scratch"
n_layer = 1
n_head = 2
n_embd = 32
vocab_size = 400
max_length = 80
dropout = 0.0
{tasks}[training]
epochs = 1
lr = 1e-3
batch_size = 4
threads = 1
gen_batch_size = 8
gamma = 0.5
"""

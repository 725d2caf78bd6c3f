"""``benchmarks/bench_rationale_chance.py``: chance token F1 of InvRat-length rationales, scored as
``cci.json`` scores InvRat's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from rationale_commons.records import Example

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports benchmarks/common.py
    try:
        spec = importlib.util.spec_from_file_location("bench_rationale_chance", BENCHMARKS / "bench_rationale_chance.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _example(i: int, evidence: int) -> Example:
    words = [f"w{j}" for j in range(10)]
    return Example(id=f"e{i}", words=words, label="a", rationale=[int(j == evidence) for j in range(10)])


def test_first_words_and_random_words_of_invrat_length():
    chance = _script().chance_scores
    front = chance([_example(i, 0) for i in range(30)], alpha=0.1)  # ceil(0.1 * 10) = 1 word each
    assert front["first_k_token_f1"] == 1.0 and front["selection_rate"] == 0.1
    assert 0.0 < front["random_token_f1"] < 0.3  # one word of ten: 0.1 expected
    back = chance([_example(i, 9) for i in range(30)], alpha=0.1)
    assert back["first_k_token_f1"] == 0.0
    assert back["n"] == 30 and back["random_draws"] == 20

"""Pseudo-samples: parsing (exactly one `__ans__`, a question before and an answer after it), each
sample's quality verdict, the counts in stage.json, the run's warning and the report's table."""

from __future__ import annotations

import json
import logging
import random

import pytest
import torch

from rational_lamol.config import TaskConfig
from rational_lamol.pseudo import (
    parse_pseudo_sample,
    sample_top_k,
    sample_with_cache,
    sample_without_cache,
)
from rational_lamol.pseudo_quality import (
    MALFORMED,
    SampleProfile,
    classify_pseudo_sample,
    describe,
    is_flagged,
    malformed_reason,
    pooled,
    repeated_ngram_share,
    sample_profile,
    tally,
)
from rational_lamol.tasks import SpecialIds, TaskData
from rationale_commons.records import Splits
from rationale_commons.synthetic import FILLER_WORDS

IDS = SpecialIds(ans=3, eos=1, pad=0, gen={"__shared__": 2, "a": 4}, shared_gen=True)


def test_accepts_well_formed():
    p = parse_pseudo_sample([10, 11, 3, 12, 1], IDS)
    assert p is not None and p.question_ids == [10, 11] and p.answer_ids == [12]
    # what follows EOS is ignored; a sample cut by the window (no EOS) is accepted
    assert parse_pseudo_sample([10, 3, 12, 1, 3, 3], IDS) is not None
    assert parse_pseudo_sample([10, 3, 12, 13], IDS).answer_ids == [12, 13]


def test_rejects_malformed():
    assert parse_pseudo_sample([10, 11, 12, 1], IDS) is None  # no __ans__
    assert parse_pseudo_sample([10, 3, 11, 3, 12, 1], IDS) is None  # two __ans__
    assert parse_pseudo_sample([3, 12, 1], IDS) is None  # empty question
    assert parse_pseudo_sample([10, 3, 1], IDS) is None  # empty answer
    assert parse_pseudo_sample([10, 2, 3, 12, 1], IDS) is None  # a generation token inside
    assert parse_pseudo_sample([10, 4, 3, 12], IDS) is None  # a per-task generation token inside
    assert parse_pseudo_sample([], IDS) is None


def test_malformed_reasons():
    assert malformed_reason([10, 11, 12, 1], IDS) == "no_ans"
    assert malformed_reason([], IDS) == "no_ans"
    assert malformed_reason([10, 3, 11, 3, 12, 1], IDS) == "several_ans"
    assert malformed_reason([10, 0, 3, 12, 1], IDS) == "special_token"  # pad
    assert malformed_reason([10, 4, 3, 12], IDS) == "special_token"
    assert malformed_reason([3, 12, 1], IDS) == "empty_question"
    assert malformed_reason([10, 3, 1], IDS) == "empty_answer"
    assert malformed_reason([10, 3, 12, 1, 3, 3, 0], IDS) is None  # after EOS: not the sample's


def test_parse_rejects_exactly_what_has_a_malformed_reason():
    rng = random.Random(0)
    for _ in range(2000):
        ids = [rng.choice([0, 1, 2, 3, 4, 10, 11, 12]) for _ in range(rng.randint(0, 8))]
        reason = malformed_reason(ids, IDS)
        assert (parse_pseudo_sample(ids, IDS) is None) == (reason is not None), ids
        assert reason is None or reason in MALFORMED


# a toy vocabulary: id -> word, decoded by joining with spaces
VOCAB = {10: "What", 11: "is", 12: "the", 13: "sentiment", 14: "of", 15: "this", 16: "review?", 20: "great",
         21: "plot", 22: "acting", 23: "boring", 30: "positive", 31: "Negative.", 32: "sports"}
WORDS = {w: i for i, w in VOCAB.items()}
SENTIMENT = SampleProfile(answers=frozenset({"positive", "negative"}),
                          prompt_words=frozenset("what is the sentiment of this review".split()))


def _ids(text: str) -> list[int]:
    return [WORDS[w] for w in text.split()]


def _decode(ids: list[int]) -> str:
    return " ".join(VOCAB[i] for i in ids)


def _verdict(question: str, answer: str | None, *, eos: bool = True, profile=SENTIMENT) -> str:
    ids = _ids(question) + [IDS.ans] + (_ids(answer) if answer else []) + ([IDS.eos] if eos else [])
    return classify_pseudo_sample(ids, IDS, _decode, profile)


def test_verdicts_of_parsed_samples():
    review = "great plot boring acting What is the sentiment of this review?"
    assert _verdict(review, "positive") == "well_formed"
    assert _verdict(review, "Negative.") == "well_formed"  # answers compare as exact match does
    assert _verdict(review, "positive", eos=False) == "truncated"  # ran into the window
    assert _verdict(review, "sports") == "unknown_answer"  # another task's answer
    assert _verdict(review, "positive positive") == "unknown_answer"
    # the sample the issue quotes: the prompt's words and nothing else
    assert _verdict("is the of this review?", "positive") == "degenerate"
    assert _verdict("great What is the sentiment of this review?", "positive") == "degenerate"  # 1 context word
    assert _verdict("great plot acting", "positive") == "well_formed"  # 3 context words suffice
    assert _verdict("great plot great plot great plot great plot", "positive") == "degenerate"  # repeats
    # a task with a query per example has no fixed question: its words count as context
    query_task = SampleProfile(answers=frozenset({"positive"}), prompt_words=frozenset())
    assert _verdict("is the of", "positive", profile=query_task) == "well_formed"
    assert _verdict("is the", "positive", profile=query_task) == "degenerate"
    # the structural checks come first
    assert _verdict("", "positive") == "empty_question"
    assert _verdict(review, None, eos=False) == "empty_answer"


def test_repeated_ngram_share():
    assert repeated_ngram_share([]) == 0.0 and repeated_ngram_share(["a", "b"]) == 0.0
    assert repeated_ngram_share("a b c d".split()) == 0.0
    assert repeated_ngram_share("a b a b a b".split()) == pytest.approx(0.5)  # 4 trigrams, 2 distinct
    assert repeated_ngram_share("a a a a a".split()) == pytest.approx(2 / 3)


def test_sample_profile_of_a_task(example_factory):
    def task(examples, **config):
        splits = Splits(name="t", train=examples, val=[], test=examples)
        return TaskData(config=TaskConfig(name="t", data="x", **config), splits=splits,
                        answers={"POS": "Positive!", "NEG": "negative"})

    single = task([example_factory("good film", "POS")], question="Is this review positive?")
    assert sample_profile(single) == SampleProfile(answers=frozenset({"positive", "negative"}),
                                                   prompt_words=frozenset({"is", "this", "review", "positive"}))
    paired = task([example_factory("the ball is red", "POS", query="is the ball red ?")])
    assert sample_profile(paired).prompt_words == frozenset()
    assert (sample_profile(single) | sample_profile(paired)) == sample_profile(single)


def test_tally_pooled_and_flag():
    counts = tally(["well_formed", "degenerate", "no_ans", "truncated"], kept=3)
    assert counts == {"generated": 4, "parsed": 3, "kept": 3, "well_formed": 1, "well_formed_share": 0.25,
                      "verdicts": {**dict.fromkeys(counts["verdicts"], 0), "well_formed": 1, "degenerate": 1,
                                   "no_ans": 1, "truncated": 1}}
    assert is_flagged(counts)
    assert describe(counts) == "25% well-formed of 4 (truncated 25%, no_ans 25%, degenerate 25%)"
    half = tally(["well_formed", "unknown_answer"], kept=2)
    assert not is_flagged(half)  # flagged only when most are not well-formed
    both = pooled([counts, half])
    assert (both["generated"], both["parsed"], both["kept"], both["well_formed"]) == (6, 5, 5, 2)
    assert both["verdicts"]["unknown_answer"] == 1 and is_flagged(both)
    assert not is_flagged(tally([], kept=0)) and describe(tally([], kept=0)) == "no samples"


# ---------------------------------------------------------------- in a run, and in the report

#: sample kinds the fake sampler returns, in order (cycled); the counts below follow from them
MOSTLY_BAD = ["well", "prompt_only", "other_answer", "no_eos", "no_ans", "two_ans"]
MOSTLY_GOOD = ["well", "well", "well", "well", "prompt_only", "no_ans"]


def _fake_rows(tokenizer, question: str) -> dict[str, list[int]]:
    def enc(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    ans, eos = tokenizer.convert_tokens_to_ids("__ans__"), tokenizer.eos_token_id
    review = enc(" " + " ".join(FILLER_WORDS[:6]) + " " + question)
    return {
        "well": [*review, ans, *enc(" positive"), eos],
        "prompt_only": [*enc(" is the of this text?"), ans, *enc(" positive"), eos],
        "other_answer": [*review, ans, *enc(" sports"), eos],  # the task being learned, not replayed
        "no_eos": [*review, ans, *enc(" positive")],
        "no_ans": [*review, eos],
        "two_ans": [*review, ans, ans, *enc(" positive"), eos],
    }


@pytest.mark.slow
@pytest.mark.parametrize(("kinds", "gen_token"), [(MOSTLY_BAD, "shared"), (MOSTLY_GOOD, "per_task")])
def test_counts_reach_stage_json_the_log_and_the_report(tmp_path, tiny_config, monkeypatch, caplog, kinds,
                                                        gen_token):
    from transformers import AutoTokenizer
    from typer.testing import CliRunner

    import rational_lamol.pseudo as pseudo
    from rational_lamol.cli import app
    from rational_lamol.config import parse_config
    from rational_lamol.pipeline import run_experiment

    cfg = tiny_config(gen_token=gen_token)
    cfg["methods"] = ["lamol"]
    config = parse_config(cfg)
    out = tmp_path / "run"

    def fake_sampler(model, start_id, n, **kw):  # the model's samples replaced by known ones
        rows = _fake_rows(AutoTokenizer.from_pretrained(str(out / "_shared" / "tokenizer")),
                          config.task("sentiment").default_question())
        return [rows[kinds[i % len(kinds)]] for i in range(n)]

    monkeypatch.setattr(pseudo, "sample_with_cache", fake_sampler)
    monkeypatch.setattr(logging.getLogger("rational_lamol"), "propagate", True)  # to caplog
    run_experiment(config, out)

    stage_dir = out / "sentiment-topic" / "seed0" / "lamol" / "2_topic"
    pseudo_stats = json.loads((stage_dir / "stage.json").read_text())["pseudo"]
    label = "__shared__" if gen_token == "shared" else "sentiment"
    total = pseudo_stats["quality"]["total"]
    assert pseudo_stats["quality"]["by_task"] == {label: total}
    verdict_of = {"well": "well_formed", "prompt_only": "degenerate", "other_answer": "unknown_answer",
                  "no_eos": "truncated", "no_ans": "no_ans", "two_ans": "several_ans"}
    expected = [verdict_of[k] for k in kinds]  # 6 requested: gamma 0.5 x 12 examples
    assert total == tally(expected, kept=sum(v not in MALFORMED for v in expected))
    replayed = (stage_dir / "pseudo_samples.jsonl").read_text().splitlines()
    assert len(replayed) == total["kept"] == pseudo_stats["kept"][label]  # replay unchanged: every parsed sample
    samples = pseudo_stats["samples"][label]
    assert [s["verdict"] for s in samples] == expected[:3]
    assert samples[0]["text"] == (f" {' '.join(FILLER_WORDS[:6])} What is the sentiment of this text?"
                                  "__ans__ positive<|endoftext|>")  # verbatim

    flagged = kinds is MOSTLY_BAD
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "pseudo-samples" in r.getMessage()]
    assert len(warned) == flagged
    if flagged:
        assert "lamol stage 2" in warned[0] and "17% well-formed of 6" in warned[0]

    res = CliRunner().invoke(app, ["report", str(out), "--out", str(tmp_path / "report.html")])
    assert res.exit_code == 0, res.output
    assert "Pseudo-samples" in res.output
    assert ("warning: lamol stage 2: most pseudo-samples are not well-formed in 1 of 1 run(s)" in res.output) == flagged
    quality = json.loads((tmp_path / "report.json").read_text())["pseudo_quality"]
    (row,) = quality["stages"]
    assert (row["method"], row["stage"], row["dir"], row["flagged"]) == ("lamol", 2, "2_topic", flagged)
    assert {k: row[k] for k in total} == total
    assert len(quality["warnings"]) == flagged
    assert "<h2>Pseudo-samples</h2>" in (tmp_path / "report.html").read_text()


def test_report_pools_stages_over_runs(tmp_path):
    from rational_lamol.report import (
        Run,
        pseudo_quality_rows,
        pseudo_quality_summary,
        pseudo_quality_table,
        pseudo_quality_warnings,
    )

    def run(seed: int, verdicts: list[str], method: str = "lamol") -> Run:
        counts = tally(verdicts, kept=len(verdicts))
        stages = [{"dir": "1_a"}, {"dir": "2_b", "pseudo": {"quality": {"total": counts, "by_task": {"a": counts}}}},
                  {"dir": "3_c", "pseudo": {"requested": {"a": 1}, "kept": {"a": 1}}}]  # recorded before the counts
        return Run(root=tmp_path, record={"method": method, "seed": seed, "order": ["a", "b", "c"], "stages": stages})

    runs = [run(0, ["well_formed"] * 3 + ["degenerate"]), run(1, ["degenerate"] * 3 + ["well_formed"]),
            run(0, ["well_formed"] * 2, method="finetune-ish")]
    rows = pseudo_quality_rows(runs)
    assert [(r["seed"], r["stage"], r["dir"], r["flagged"]) for r in rows] == [(0, 2, "2_b", False), (1, 2, "2_b", True),
                                                                              (0, 2, "2_b", False)]
    summary = pseudo_quality_summary(rows)
    lamol = summary[0]
    assert (lamol["method"], lamol["stage"], lamol["n_runs"], lamol["n_flagged"]) == ("lamol", 2, 2, 1)
    assert (lamol["generated"], lamol["well_formed"], lamol["verdicts"]["degenerate"]) == (8, 4, 4)
    assert pseudo_quality_warnings(summary) == [
        "lamol stage 2: most pseudo-samples are not well-formed in 1 of 2 run(s); pooled: "
        "50% well-formed of 8 (degenerate 50%)"]
    table = pseudo_quality_table(summary)
    assert table.row_count == 2 and table.columns[6]._cells[0] == "50%"  # well-formed, lamol


def _eos_prone_gpt2(eos_id: int):
    """A tiny random GPT-2 whose EOS row is scaled up, so that samples stop at varied lengths."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=300, n_positions=64)).eval()
    with torch.no_grad():
        model.transformer.wte.weight[eos_id] *= 6
    return model


def test_rows_leaving_the_batch_change_no_other_sample():
    """The cached sampler drops a row at EOS; the plain loop keeps every row to the end. Each row
    draws its own uniforms, so both give the same samples, of varied lengths."""
    model = _eos_prone_gpt2(eos_id=7)
    kw = dict(max_length=40, eos_id=7, top_k=20, temperature=1.0, batch_size=8, generator_seed=3)
    cached = sample_with_cache(model, 2, 12, **kw)
    assert cached == sample_without_cache(model, 2, 12, **kw)
    assert len({len(row) for row in cached}) > 2  # rows left the batch at different steps
    assert all(row[-1] == 7 or len(row) == 39 for row in cached)  # at EOS or at the window
    assert cached == sample_with_cache(model, 2, 12, **kw)  # the seed alone decides


def test_sample_top_k_inverts_the_cdf_of_the_k_largest_logits():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -5.0]])
    probs = torch.tensor([3.0, 2.0, 1.0]).softmax(-1)  # tokens 1, 3, 2: the 3 largest, in order
    edges = probs.cumsum(-1)
    for u, token in ((0.0, 1), (float(edges[0]) - 1e-4, 1), (float(edges[0]) + 1e-4, 3),
                     (float(edges[1]) + 1e-4, 2), (0.9999, 2)):
        assert int(sample_top_k(logits, torch.tensor([u]), 3, 1.0)) == token
    # top_k 0: the whole vocabulary; the least likely token is reachable at the top of the CDF
    assert int(sample_top_k(logits, torch.tensor([0.999999]), 0, 1.0)) == 4

"""A new dataset in one command (issue 21): the recipe's defaults, the data options, the column
mapping kept in the run dir, baselines beside every evaluation, multiple choice refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from invrat.baselines import label_baselines, random_spread, selection_baselines
from invrat.cli import app
from invrat.multiple_choice import option_count
from invrat.recipe import alpha_for_length, kept_model_warnings
from rationale_commons.eraser_io import write_eraser
from rationale_commons.records import Example
from rationale_commons.synthetic import make_task

TINY = ["--epochs", "2", "--restarts", "1", "--threads", "1", "--quiet"]


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def one_line_error(*args: object) -> str:
    code, _, err = run(*args)
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("invrat: error:"), err
    return lines[0]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Split files whose text column is "content", except test's ("body"); rationales in "rat"."""
    root = tmp_path_factory.mktemp("table")
    splits = make_task("sentiment", seed=0, n_train=60, n_val=12, n_test=10, doc_words=(8, 14))
    for split, examples in splits.items():
        column = "body" if split == "test" else "content"
        _write(root / f"{split}.jsonl", [{column: " ".join(ex.words), "label": ex.label, "rat": ex.rationale} for ex in examples])
    return root


def test_one_command_on_a_table_then_the_run_reads_its_data_the_same_way(table: Path, tmp_path: Path) -> None:
    code, out, err = run("train", table, "--out", tmp_path / "run", "--text-column", "content",
                         "--split-column", "test:text=body", "--max-examples", "40", "--seed", "3", *TINY)
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["game"]["seed"] == 3
    assert config["game"]["selection"] == config["experimental"]["train_selection"] == "top_alpha"
    assert config["game"]["alpha"] == alpha_for_length(11)  # the median length of the capped train split
    assert json.loads((tmp_path / "run" / "data.json").read_text())["columns"]["test"]["text"] == "body"
    # rationalize and evaluate read the data with the run's mapping, no column option given
    code, out, err = run("rationalize", tmp_path / "run", table, "--out", tmp_path / "pred.jsonl", "--format", "results")
    assert code == 0 and "10 results lines" in out, err
    code, out, err = run("rationalize", tmp_path / "run", table, "--split", "dev", "--out", tmp_path / "dev.jsonl")
    assert code == 0 and "12 annotations lines" in out, err
    code, out, err = run("evaluate", tmp_path / "pred.jsonl", "--gold", table, "--run", tmp_path / "run",
                         "--json", tmp_path / "scores.json")
    assert code == 0, err  # no rationale column: labels only, beside the baselines
    assert "tf-idf logreg" in out and "majority 0.5000" in out
    report = json.loads((tmp_path / "scores.json").read_text())
    assert set(report["summary"]) == {"accuracy", "macro_f1"}
    assert set(report["baselines"]) == {"tfidf_logreg_accuracy", "tfidf_logreg_macro_f1", "majority_accuracy", "majority_macro_f1"}
    # with gold rationales: every rationale metric beside random and first-k
    code, out, err = run("evaluate", tmp_path / "pred.jsonl", "--gold", table, "--text-column", "content",
                         "--split-column", "test:text=body", "--rationale-column", "rat", "--json", tmp_path / "scores.json")
    assert code == 0, err
    baselines = json.loads((tmp_path / "scores.json").read_text())["baselines"]
    assert {"random", "first_k"} <= set(baselines) and "token_f1" in baselines["random"]
    assert "first_k" in out.splitlines()[0] and "random 95%" in out.splitlines()[0]
    spread = baselines["random_draws"]
    assert spread["n"] == 20 and spread["token_f1"]["mean"] == baselines["random"]["token_f1"]
    assert spread["token_f1"]["low"] <= spread["token_f1"]["mean"] <= spread["token_f1"]["high"]
    # one draw is the seed-0 draw alone; zero draws is refused in one line
    code, out, err = run("evaluate", tmp_path / "pred.jsonl", "--gold", table, "--text-column", "content",
                         "--split-column", "test:text=body", "--rationale-column", "rat", "--random-draws", "1",
                         "--json", tmp_path / "one.json")
    assert code == 0, err
    one = json.loads((tmp_path / "one.json").read_text())["baselines"]["random_draws"]["token_f1"]
    assert one["low"] == one["mean"] == one["high"]
    assert "random_draws must be at least 1" in one_line_error("evaluate", tmp_path / "pred.jsonl", "--gold", table, "--random-draws", "0")


def test_data_options_fail_in_one_line(table: Path, tmp_path: Path) -> None:
    assert "unknown split 'dev2'" in one_line_error("train", table, "--out", tmp_path / "r", "--train-split", "dev2")
    assert "SPLIT:FIELD=COLUMN" in one_line_error("train", table, "--out", tmp_path / "r", "--split-column", "test:body")
    assert "missing column 'text'" in one_line_error("train", table, "--out", tmp_path / "r")
    assert "not an invrat run dir" in one_line_error("evaluate", table / "test.jsonl", "--gold", table, "--run", tmp_path)


def test_skip_missing_docs_leaves_out_annotations_without_their_document(tmp_path: Path) -> None:
    splits = make_task("pair", seed=0, n_train=30, n_val=8, n_test=6, doc_words=(10, 12))
    folder = write_eraser(splits, tmp_path / "eraser")
    missing = sorted((folder / "docs").iterdir())[0]
    missing.unlink()
    assert "unknown docid" in one_line_error("train", folder, "--out", tmp_path / "r1", *TINY)
    code, _, err = run("train", folder, "--out", tmp_path / "r2", "--skip-missing-docs", *TINY)
    assert code == 0, err
    assert json.loads((tmp_path / "r2" / "data.json").read_text())["skip_missing_docs"] is True


def test_multiple_choice_is_refused_in_one_line(tmp_path: Path) -> None:
    assert option_count("which is red ? [sep] apple [sep] sky [sep] grass") == 3  # ERASER CoS-E
    assert option_count("['apple', 'sky', 'grass']") == 3
    assert option_count("{'text': ['apple', 'sky'], 'label': ['A', 'B']}") == 2
    assert option_count("is it red || apple") == 0  # MultiRC: one candidate answer, a true/false pair
    assert option_count("is the sky blue ?") == 0
    rows = [{"text": f"what grows on tree {i} ?", "label": "ABC"[i % 3], "choices": "['apple', 'stone', 'cloud']"}
            for i in range(12)]
    _write(tmp_path / "train.jsonl", rows)
    message = one_line_error("train", tmp_path / "train.jsonl", "--out", tmp_path / "run", "--query-column", "choices", *TINY)
    assert "multiple choice is not supported" in message
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_selection_baselines_take_as_many_words_as_the_prediction() -> None:
    documents = {"d1": [f"w{i}" for i in range(10)], "d2": ["a", "b", "c"]}
    results = [{"annotation_id": "a1", "rationales": [{"docid": "d1", "hard_rationale_predictions": [{"start_token": 4, "end_token": 7}]}]},
               {"annotation_id": "a2", "rationales": [{"docid": "d2", "hard_rationale_predictions": []}]}]
    lines = selection_baselines(results, documents)
    assert lines["first_k"][0]["rationales"][0]["hard_rationale_predictions"] == [{"start_token": 0, "end_token": 3}]
    chosen = lines["random"][0]["rationales"][0]["hard_rationale_predictions"]
    assert sum(h["end_token"] - h["start_token"] for h in chosen) == 3
    assert lines["random"][1]["rationales"][0]["hard_rationale_predictions"] == []
    assert selection_baselines(results, documents) == lines  # seeded


def test_random_spread_places_a_score_among_the_draws() -> None:
    draws = [{"token_f1": v / 100, "auprc": 0.5} for v in range(1, 101)]  # token F1 0.01 ... 1.00
    spread = random_spread(draws, {"token_f1": 0.955})
    assert spread["n"] == 100
    assert spread["token_f1"]["mean"] == pytest.approx(0.505)
    assert spread["token_f1"]["low"] == pytest.approx(0.03475) and spread["token_f1"]["high"] == pytest.approx(0.97525)
    assert spread["token_f1"]["at_or_above"] == pytest.approx(0.05)  # 0.96 ... 1.00
    assert "at_or_above" not in spread["auprc"] and spread["auprc"]["low"] == spread["auprc"]["high"] == 0.5


def test_label_baselines_and_kept_model_warnings() -> None:
    def ex(i: int, text: str, label: str) -> Example:
        return Example(id=str(i), words=text.split(), label=label)

    train = [ex(i, f"good film {i}", "pos") for i in range(6)] + [ex(10 + i, f"bad film {i}", "neg") for i in range(4)]
    test = [ex(20, "good one", "pos"), ex(21, "bad one", "neg"), ex(22, "bad two", "neg")]
    assert label_baselines(train, test) == {"majority_accuracy": pytest.approx(1 / 3), "majority_macro_f1": 0.25,
                                            "tfidf_logreg_accuracy": 1.0, "tfidf_logreg_macro_f1": 1.0}
    assert kept_model_warnings({"dev_selection_rate": 0.2, "dev_acc": 0.9}, test) == []
    warnings = kept_model_warnings({"dev_selection_rate": 0.0, "dev_acc": 2 / 3}, test)
    assert len(warnings) == 2 and "selects no word" in warnings[0] and "majority" in warnings[1]
    assert [alpha_for_length(n) for n in (1, 20, 300, 700, 5000)] == [0.4, 0.3, 0.1, 0.07, 0.05]


def test_long_documents_are_rationalized_in_windows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from invrat import InvRatConfig, rationalize, train_invrat

    splits = make_task("sentiment", seed=0, n_train=40, n_val=10, n_test=8, doc_words=(12, 20))
    config = InvRatConfig(max_len=5, hidden_dim=8, embedding_dim=8, epochs=1, warmup_epochs=0, restarts=1,
                          selection="top_alpha", alpha=0.2, progress=False, num_threads=1)
    with caplog.at_level("WARNING", logger="invrat"):
        run_dir = train_invrat(splits, config, tmp_path / "run")
    assert "40 of 40 training documents are longer than max_len = 5" in caplog.text
    for ex, r in zip(splits.test, rationalize(run_dir, splits.test), strict=True):
        assert len(r.mask) == len(r.scores) == len(ex.words)
        windows = [r.mask[s : s + 5] for s in range(0, len(ex.words), 5)]
        assert all(sum(w) == -(-len(w) // 5) for w in windows)  # ceil(0.2 * n) words of every window


def test_predictor_auto_takes_the_bag_of_words_only_where_the_words_carry_the_label(tmp_path: Path) -> None:
    import random

    from invrat import InvRatConfig, train_invrat
    from invrat.recipe import resolve_predictor

    splits = make_task("sentiment", seed=0, n_train=120, n_val=200, n_test=4, doc_words=(8, 14))
    auto = InvRatConfig(predictor="auto")
    assert resolve_predictor(auto, splits.train, splits.val).players.predictor == "bag_of_words"
    rng = random.Random(0)  # labels drawn independently of the text: nothing linear to read

    def shuffled(examples):
        return [ex.model_copy(update={"label": rng.choice(["negative", "positive"])}) for ex in examples]

    assert resolve_predictor(auto, shuffled(splits.train), shuffled(splits.val)).players.predictor == "bigru"
    assert resolve_predictor(InvRatConfig(predictor="bigru"), splits.train, splits.val).players.predictor == "bigru"
    config = InvRatConfig(predictor="auto", hidden_dim=8, embedding_dim=8, epochs=1, warmup_epochs=1, restarts=1,
                          progress=False, num_threads=1, selection="top_alpha", alpha=0.2)
    run = train_invrat(splits, config, tmp_path / "run")
    assert json.loads((run / "config.json").read_text())["players"]["predictor"] == "bag_of_words"
    assert train_invrat(splits, config, run, resume=True) == run  # the same "auto" config resumes it

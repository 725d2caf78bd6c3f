"""``rational-lamol cci`` and ``rational-lamol report`` end to end on tiny models and run dirs."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rational_lamol.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two differently initialised 2-block, 2-head GPT-2 folders sharing a tokenizer."""
    from rational_lamol.config import ModelConfig
    from rational_lamol.modeling import build_scratch_model, save_model, train_scratch_tokenizer
    from rational_lamol.tasks import special_token_strings
    from rationale_commons.synthetic import make_task

    splits = make_task("sentiment", n_train=40, n_val=8, n_test=4)
    texts = [" ".join(ex.words) for ex in splits.train] + ["What is the sentiment of this text?"]
    tok = train_scratch_tokenizer(texts, vocab_size=400, special_tokens=special_token_strings(["x"]))
    mc = ModelConfig(n_layer=2, n_head=2, n_embd=32, max_length=128, vocab_size=400, dropout=0.0)
    root = tmp_path_factory.mktemp("cci_models")
    for name, seed in (("old", 0), ("new", 1)):
        torch.manual_seed(seed)
        model = build_scratch_model(mc, len(tok), eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
        save_model(model, tok, root / name)
    return root / "old", root / "new"


def test_cci_block_json(two_models, tmp_path):
    old, new = two_models
    out = tmp_path / "cci.json"
    res = runner.invoke(app, ["cci", "--old", str(old), "--new", str(new), "--data", "synthetic:sentiment",
                              "--rationales", "human", "--n", "6", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "chosen (block)" in res.output and "votes per block" in res.output
    data = json.loads(out.read_text())
    assert {"level", "chosen", "votes", "n_used", "n_skipped"} <= set(data)
    assert data["level"] == "block" and data["n_used"] + data["n_skipped"] == 6
    assert len(data["votes"]) == 2 and sum(data["votes"]) == data["n_used"]
    assert data["chosen"] == ([max(range(2), key=lambda b: (data["votes"][b], -b))] if data["n_used"] else [])


def test_cci_head_json_and_rationale_file(two_models, tmp_path):
    """Rationales from an ERASER annotation file: one word per example (the first) is the rationale."""
    from rationale_commons.synthetic import make_task

    old, new = two_models
    val = make_task("sentiment", n_train=40, n_val=8, n_test=4).val
    lines = [json.dumps({"annotation_id": ex.id, "classification": ex.label,
                         "evidences": [[{"docid": ex.id, "start_token": 0, "end_token": 1}]]}) for ex in val]
    ann = tmp_path / "ann.jsonl"
    ann.write_text("\n".join(lines) + "\n")
    out = tmp_path / "heads.json"
    res = runner.invoke(app, ["cci", "--old", str(old), "--new", str(new), "--data", "synthetic:sentiment",
                              "--rationales", str(ann), "--level", "head", "--top-k", "3", "--n", "5",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["level"] == "head" and data["n_used"] == 5 and data["n_skipped"] == 0
    assert len(data["chosen"]) == 3 and all(len(c) == 2 for c in data["chosen"])
    assert sum(map(sum, data["votes"])) == 5 * 3


def test_cci_counts_examples_without_a_rationale_as_skipped(two_models, tmp_path):
    """A rationale file annotating 2 of 6 examples: the other 4 have no rationale (not the data's)."""
    from rationale_commons.synthetic import make_task

    old, new = two_models
    val = make_task("sentiment", n_train=40, n_val=8, n_test=4).val
    ann = tmp_path / "ann.jsonl"
    ann.write_text("".join(json.dumps({"annotation_id": ex.id, "evidences": [[{"docid": ex.id, "start_token": 0,
                                                                                "end_token": 2}]]}) + "\n"
                           for ex in val[:2]))
    out = tmp_path / "cci.json"
    res = runner.invoke(app, ["cci", "--old", str(old), "--new", str(new), "--data", "synthetic:sentiment",
                              "--rationales", str(ann), "--n", "6", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["n_without_rationale"] == 4 and data["n_used"] + data["n_skipped"] == 6 and data["n_skipped"] >= 4
    assert f"skipped {data['n_skipped']}" in res.output and data["split"] == "val"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--old", "/nonexistent"], "not a save_pretrained model folder"),
        (["--rationales", "/no/such.jsonl"], "rationales: not 'human' and not a file"),
        (["--split", "dev"], "split must be one of train, val, test"),
        (["--data", "synthetic:nosuch"], "unknown synthetic task"),
    ],
)
def test_cci_bad_input_one_line_error(two_models, args, message):
    old, new = two_models
    base = {"--old": str(old), "--new": str(new), "--data": "synthetic:sentiment", "--rationales": "human"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    res = runner.invoke(app, ["cci", *[x for kv in base.items() for x in kv]])
    assert res.exit_code != 0
    err = res.stderr if hasattr(res, "stderr") and res.stderr else res.output
    assert err.startswith("rational-lamol: error: ") and message in err and len(err.strip().splitlines()) == 1


def _fake_run_dir(root, seed_scores):
    """A run dir as the pipeline writes it (results.json + a cci.json), from given final scores."""
    from rational_lamol.results import build_run_record, write_results

    records = []
    for method in ("lamol", "rational-block"):
        for seed, (a, b) in seed_scores.items():
            rel = f"s-t/seed{seed}/{method}"
            records.append(build_run_record(method=method, seed=seed, order=["s", "t"], rel_dir=rel,
                                            rows=[[a, 0.0], [b, 90.0]], baseline=[0.0, 0.0]))
            if method == "rational-block":
                (root / rel).mkdir(parents=True)
                (root / rel / "cci.json").write_text(json.dumps([{
                    "from_task": "s", "to_task": "t", "level": "block", "chosen": [1], "frozen": [1],
                    "votes": [2, 5], "n_used": 7, "n_skipped": 1, "scores_mean": [0.5, 0.25]}]))
    write_results(root, records)
    return root


def test_report_aggregates_runs(tmp_path):
    run = _fake_run_dir(tmp_path / "run", {0: (80.0, 60.0), 1: (90.0, 50.0)})
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    html = (run / "report.html").read_text()
    assert "rational-block" in html and "data:image/png;base64" in html
    assert "block 1" in res.output
    # ACC = mean of the last row: seed 0 -> 75, seed 1 -> 70: 72.5 ± 3.5
    assert "72.5 ± 3.5" in res.output


def test_report_bad_dir(tmp_path):
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code != 0 and "error: " in res.output and "results.json" in res.output

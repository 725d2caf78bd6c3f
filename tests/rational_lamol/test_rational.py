"""Rational LAMOL through the real pipeline: probe → CCI → freeze → retrain (docs/algorithms.md §2).

One tiny 3-task run per module (a 2-block GPT-2, real AdamW steps with weight decay) is shared by
the tests below; they read its run dir the way report.py does.
"""

from __future__ import annotations

import json

import pytest
import torch

from rational_lamol.config import parse_config
from rational_lamol.registry import available_methods, make_method
from rationale_commons.errors import DataError
from rationale_commons.records import Example

TASKS = ["sentiment", "topic", "pair"]


def _config(**overrides):
    d = {
        "name": "tiny-rational",
        "model": {"source": "gpt2-scratch", "n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 400,
                  "max_length": 80, "dropout": 0.0},
        "training": {"epochs": 1, "lr": 1e-3, "batch_size": 4, "threads": 1, "gen_batch_size": 8, "gamma": 0.5},
    }
    d["tasks"] = [
        {"name": "sentiment", "data": "synthetic:sentiment", "max_train": 16, "max_val": 6, "max_test": 4,
         "rationales": "invrat"},
        {"name": "topic", "data": "synthetic:topic", "max_train": 16, "max_val": 6, "max_test": 4},
        {"name": "pair", "data": "synthetic:pair", "max_train": 16, "max_val": 6, "max_test": 4},
    ]
    d["methods"] = ["rational-block", "rational-head"]
    d["method_options"] = {"rational-head": {"top_k": 2}}
    d["training"].update({"lr": 5e-3, "weight_decay": 0.1, "epochs": 2})
    # alpha 0.5: the generator starts at a 50% selection rate, so two epochs on 16 examples still
    # select words and CCI has votes to count (quality is the InvRat benchmark's business).
    d["invrat"] = {"epochs": 2, "warmup_epochs": 1, "alpha": 0.5, "restarts": 1, "hidden_dim": 8, "embedding_dim": 8, "num_threads": 1,
                   "max_len": 80, "device": "cpu"}
    d.update(overrides)
    return d


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from rational_lamol.pipeline import run_experiment

    out = tmp_path_factory.mktemp("rational") / "run"
    run_experiment(parse_config(_config()), out)
    return out


def _method_dir(run_dir, method):
    return run_dir / "-".join(TASKS) / "seed0" / method


def _state(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_registered_and_options_checked():
    assert {"rational-block", "rational-head"} <= set(available_methods())
    assert make_method("rational-head", {"top_k": 3}).options.level == "head"
    with pytest.raises(DataError, match="top_k"):
        make_method("rational-head", {"top_k": 0})
    with pytest.raises(DataError, match="row_filter"):
        make_method("rational-block", {"row_filter": "some"})
    with pytest.raises(DataError, match="level"):
        make_method("rational-block", {"level": "head"})
    with pytest.raises(DataError, match="topk: unknown key"):
        make_method("rational-block", {"topk": 3})


def test_cci_json_one_entry_per_transition(run_dir):
    for method, level in (("rational-block", "block"), ("rational-head", "head")):
        entries = json.loads((_method_dir(run_dir, method) / "cci.json").read_text())
        assert [(e["from_task"], e["to_task"]) for e in entries] == [("sentiment", "topic"), ("topic", "pair")]
        for e in entries:
            assert e["level"] == level
            assert e["n_used"] + e["n_skipped"] == 6
            if level == "block":
                assert len(e["votes"]) == 2 and sum(e["votes"]) == e["n_used"]  # zeros when nobody voted
                assert len(e["scores_mean"]) == 2 if e["n_used"] else e["scores_mean"] == []
            else:
                assert len(e["votes"]) == 2 and len(e["votes"][0]) == 2
                assert all(len(c) == 2 for c in e["chosen"]) and len(e["chosen"]) <= 2
            assert e["param_counts"]["total"]["frozen"] > 0 or not e["frozen"]
        # accumulate (default): what was frozen earlier stays frozen
        first, second = entries
        assert first["frozen"] == first["chosen"]
        assert {json.dumps(c) for c in first["frozen"]} <= {json.dumps(c) for c in second["frozen"]}
        assert {json.dumps(c) for c in second["chosen"]} <= {json.dumps(c) for c in second["frozen"]}


def test_frozen_block_bit_identical_across_the_retrain(run_dir):
    """AdamW with weight decay 0.1 and lr 5e-3 ran real steps; the frozen block did not move."""
    d = _method_dir(run_dir, "rational-block")
    entries = json.loads((d / "cci.json").read_text())
    for stage, entry in ((2, entries[0]), (3, entries[1])):
        before = _state(d / f"{stage - 1}_{TASKS[stage - 2]}" / "model")
        after = _state(d / f"{stage}_{TASKS[stage - 1]}" / "model")
        frozen = set(entry["frozen"])
        assert frozen, "CCI chose nothing"
        moved_elsewhere = False
        for name, tensor in before.items():
            block = int(name.split(".h.")[1].split(".")[0]) if ".h." in name else None
            if block in frozen:
                assert torch.equal(tensor, after[name]), f"{name} of frozen block {block} changed"
            elif not torch.equal(tensor, after[name]):
                moved_elsewhere = True
        assert moved_elsewhere, "nothing trained at all"
        per_block = {r["block"]: r for r in entry["param_counts"]["blocks"]}
        for b in frozen:
            assert per_block[b]["trainable"] == 0 and per_block[b]["frozen"] > 0


def test_frozen_heads_bit_identical_across_the_retrain(run_dir):
    d = _method_dir(run_dir, "rational-head")
    entry = json.loads((d / "cci.json").read_text())[0]
    before, after = _state(d / "1_sentiment" / "model"), _state(d / "2_topic" / "model")
    E, H = 32, 2
    hd = E // H
    for b, h in entry["frozen"]:
        w0, w1 = before[f"transformer.h.{b}.attn.c_attn.weight"], after[f"transformer.h.{b}.attn.c_attn.weight"]
        for k in range(3):
            cols = slice(k * E + h * hd, k * E + (h + 1) * hd)
            assert torch.equal(w0[:, cols], w1[:, cols])
        p0, p1 = before[f"transformer.h.{b}.attn.c_proj.weight"], after[f"transformer.h.{b}.attn.c_proj.weight"]
        assert torch.equal(p0[h * hd : (h + 1) * hd], p1[h * hd : (h + 1) * hd])
    assert not torch.equal(before["transformer.h.0.mlp.c_fc.weight"], after["transformer.h.0.mlp.c_fc.weight"])


def test_task1_model_shared_by_both_methods(run_dir):
    a = _state(_method_dir(run_dir, "rational-block") / "1_sentiment" / "model")
    b = _state(_method_dir(run_dir, "rational-head") / "1_sentiment" / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    stage = json.loads((_method_dir(run_dir, "rational-head") / "1_sentiment" / "stage.json").read_text())
    assert "task1_shared_from" in stage


def test_invrat_rationales_written_once_with_quality_and_samples(run_dir):
    ann = run_dir / "rationales" / "sentiment.jsonl"
    assert ann.is_file() and len(ann.read_text().splitlines()) == 6
    quality = json.loads((run_dir / "rationales" / "sentiment.quality.json").read_text())
    q = quality["quality_vs_data_rationale"]
    assert 0.0 <= q["token_f1_macro"] <= 1.0 and q["n"] == 6
    samples = json.loads((run_dir / "rationale_samples.json").read_text())
    assert {s["task"] for s in samples} == {"sentiment", "topic"}
    for s in samples:
        assert len(s["predicted"]) == len(s["words"])
        if s["task"] == "topic":  # human source: the planted rationale itself
            assert s["predicted"] == s["gold"]
    entries = json.loads((_method_dir(run_dir, "rational-block") / "cci.json").read_text())
    assert entries[0]["rationale_source"]["source"] == "invrat"
    # the synthetic data has no environments: the pipeline's InvRat infers two, so the penalty acts
    envs = entries[0]["rationale_source"]["environments"]
    assert envs["policy"] == "infer" and len(envs["counts"]) == 2 and envs["env_player"]
    assert entries[1]["rationale_source"]["source"] == "human"


def test_history_survives_restart(run_dir, tmp_path):
    """A resumed stage reads the earlier freezes back from cci.json (and redoes its own entry)."""
    from types import SimpleNamespace

    method = make_method("rational-block", {})
    d = _method_dir(run_dir, "rational-block")
    entries = json.loads((d / "cci.json").read_text())
    ctx = SimpleNamespace(run_dir=d, order=TASKS, index=2)
    assert method.history(ctx) == entries[:1]
    assert method.frozen_before(entries[:1]).blocks == sorted(set(entries[0]["chosen"]))
    ctx.index = 1
    assert method.history(ctx) == []
    assert make_method("rational-block", {"accumulate": False}).frozen_before(entries).is_empty()


def test_cci_items_align_rationale_words_to_document_tokens(tiny_tokenizer):
    from rational_lamol.cci_inputs import cci_item
    from rational_lamol.tasks import encode_qa

    ex = Example(id="x", words="the movie was great".split(), label="positive", rationale=[0, 0, 0, 1])
    item = cci_item(ex, encode_qa(ex, tiny_tokenizer, 64, question="what is the sentiment of this review?"))
    doc = [i for i, m in enumerate(item.doc_mask) if m]
    assert doc == list(range(len(doc))) and len(doc) >= 4
    text = tiny_tokenizer.decode([item.input_ids[i] for i, m in enumerate(item.rationale_mask) if m])
    assert text.strip() == "great"
    assert all(not r or d for r, d in zip(item.rationale_mask, item.doc_mask, strict=True))
    assert len(item.input_ids) == len(doc)  # CCI feeds the document only (causal: nothing later counts)
    # the rationale cut off by a short window: an all-zero mask (CCI skips it)
    full = encode_qa(ex, tiny_tokenizer, 64, question="what is the sentiment of this review?").input_ids
    window = len(full) - len(doc) + 2 + 1  # room for GEN/EOS and one document token ("the")
    cut = cci_item(ex, encode_qa(ex, tiny_tokenizer, window, question="what is the sentiment of this review?"))
    assert cut.truncated and not any(cut.rationale_mask)


def test_comparison_with_other_rationales_records_agreement_and_changes_nothing(run_dir, tmp_path):
    """``compare_with`` runs CCI a second time from the other source; the run itself is unchanged."""
    from rational_lamol.pipeline import run_experiment

    config = _config(methods=["rational-head"],
                     method_options={"rational-head": {"top_k": 2, "compare_with": "invrat"}})
    out = tmp_path / "run"
    run_experiment(parse_config(config), out)
    entries = json.loads((_method_dir(out, "rational-head") / "cci.json").read_text())
    plain = json.loads((_method_dir(run_dir, "rational-head") / "cci.json").read_text())
    assert "comparison" not in entries[0]  # sentiment's own rationales are InvRat's already
    second = entries[1]["comparison"]  # topic: human rationales, compared with InvRat's
    assert second["rationale_source"]["source"] == "invrat"
    assert second["size"] == len(entries[1]["chosen"]) and 0 <= second["overlap"] <= second["size"]
    assert second["same"] == (sorted(map(tuple, second["chosen"])) == sorted(map(tuple, entries[1]["chosen"])))
    assert (out / "rationales" / "topic.jsonl").is_file()
    assert {e["task"] for e in json.loads((out / "rationale_samples.json").read_text())} == {"sentiment", "topic"}
    for mine, theirs in zip(entries, plain, strict=True):
        assert mine["chosen"] == theirs["chosen"] and mine["votes"] == theirs["votes"]
    from rational_lamol.report import load_runs, rationale_agreement, write_report

    (row,) = rationale_agreement(load_runs([out]))
    assert (row["method"], row["compared_with"], row["transitions"]) == ("rational-head", "invrat", 1)
    assert row["same_choice"] == int(second["same"]) and row["mean_jaccard"] == second["jaccard"]
    assert 0 < row["chance_overlap"] < 1 and 0 < row["chance_jaccard"] < row["chance_overlap"]
    write_report([out], out / "report.html")
    assert json.loads((out / "report.json").read_text())["rationale_agreement"] == [row]
    a, b = (_state(_method_dir(d, "rational-head") / "3_pair" / "model") for d in (out, run_dir))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_choice_agreement():
    from rational_lamol.freezing import FreezeSpec
    from rational_lamol.rational import choice_agreement

    a, b = FreezeSpec(heads=[(0, 1), (1, 0)]), FreezeSpec(heads=[(1, 0), (1, 1)])
    assert choice_agreement(a, b, "head") == {"size": 2, "overlap": 1, "jaccard": round(1 / 3, 4), "same": False}
    assert choice_agreement(FreezeSpec(blocks=[2]), FreezeSpec(blocks=[2]), "block")["same"]
    assert choice_agreement(FreezeSpec(), FreezeSpec(), "block")["jaccard"] == 1.0


def test_chance_agreement_matches_drawing_at_random():
    """The exact expectations equal an enumeration of every draw (4 components, choices of 2)."""
    import itertools

    from rational_lamol.freezing import FreezeSpec
    from rational_lamol.rational import chance_agreement, choice_agreement

    first = FreezeSpec(blocks=[0, 1])
    draws = [choice_agreement(first, FreezeSpec(blocks=list(c)), "block") for c in itertools.combinations(range(4), 2)]
    chance = chance_agreement(4, 2, 2)
    assert chance["overlap"] == pytest.approx(sum(d["overlap"] / 2 for d in draws) / len(draws)) == 0.5
    assert chance["jaccard"] == pytest.approx(sum(d["overlap"] / (4 - d["overlap"]) for d in draws) / len(draws))
    assert chance["same"] == pytest.approx(1 / 6)
    assert chance_agreement(270, 22, 22)["overlap"] == pytest.approx(22 / 270)
    assert chance_agreement(4, 1, 2)["same"] == 0.0
    with pytest.raises(ValueError):
        chance_agreement(3, 4, 1)


def test_probe_curve_and_cheap_probe_follow_the_full_probes_trajectory(run_dir, tmp_path):
    """CCI along the probe changes nothing; the share-1 point is the final choice; a cheap probe
    (probe_share 0.5) chooses what the full probe's curve chose at half its steps."""
    from rational_lamol.pipeline import run_experiment

    curve_run, cheap_run = tmp_path / "curve", tmp_path / "cheap"
    run_experiment(parse_config(_config(methods=["rational-block"], method_options={
        "rational-block": {"probe_curve": [0.5, 1.0]}})), curve_run)
    run_experiment(parse_config(_config(methods=["rational-block"], method_options={
        "rational-block": {"probe_share": 0.5}})), cheap_run)
    plain, curve, cheap = (json.loads((_method_dir(d, "rational-block") / "cci.json").read_text())
                           for d in (run_dir, curve_run, cheap_run))
    for p, c, q in zip(plain, curve, cheap, strict=True):
        assert c["chosen"] == p["chosen"] and c["probe"] == p["probe"]
        half, full = c["probe_curve"]
        assert (half["share"], full["share"]) == (0.5, 1.0) and full["steps"] == c["probe"]["schedule_steps"]
        assert full["chosen"] == c["chosen"] and full["same"] and full["jaccard"] == 1.0
        assert q["probe"]["steps"] == half["steps"] < p["probe"]["steps"]
        assert q["chosen"] == half["chosen"]
    a, b = (_state(_method_dir(d, "rational-block") / "3_pair" / "model") for d in (run_dir, curve_run))
    assert all(torch.equal(a[k], b[k]) for k in a)
    timing = json.loads((_method_dir(curve_run, "rational-block") / "timing.json").read_text())
    for stage in timing["stages"][1:]:  # wall-clock of CCI and of the curve's passes: timing.json only
        assert stage["cci_seconds"] > 0 and stage["probe_curve"]["seconds"] > 0


def test_a_scratch_llama_runs_rational_lamol_and_freezes_its_heads(tmp_path):
    """``source = "llama-scratch"``: a fresh Llama (rotary positions) trains, CCI reads its attention
    and the chosen heads' query, key, value and output slices stay bit-identical in the retrain."""
    from rational_lamol.pipeline import run_experiment

    config = _config(methods=["rational-head"])
    config["model"]["source"] = "llama-scratch"
    config["tasks"] = [dict(t, rationales="human") for t in config["tasks"][:2]]
    run_experiment(parse_config(config), tmp_path / "run")
    d = tmp_path / "run" / "sentiment-topic" / "seed0" / "rational-head"
    assert json.loads((d / "1_sentiment" / "model" / "config.json").read_text())["model_type"] == "llama"
    before, after = _state(d / "1_sentiment" / "model"), _state(d / "2_topic" / "model")
    hd = 32 // 2
    frozen = json.loads((d / "cci.json").read_text())[0]["frozen"]
    assert frozen
    for b, h in frozen:
        rows = slice(h * hd, (h + 1) * hd)
        for name in ("q_proj", "k_proj", "v_proj"):
            key = f"model.layers.{b}.self_attn.{name}.weight"
            assert torch.equal(before[key][rows], after[key][rows])
        key = f"model.layers.{b}.self_attn.o_proj.weight"
        assert torch.equal(before[key][:, rows], after[key][:, rows])
    key = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(before[key], after[key])

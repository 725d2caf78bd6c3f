"""`rational-lamol` against hostile configs, files and faults: the run-dir lock, safe names, honest
answers, escaped reports, one-line errors that lose nothing, and a reusable --out after a failure."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from tiny_configs import write_toml
from typer.testing import CliRunner

from rational_lamol.cli import app
from rational_lamol.config import ModelConfig, parse_config
from rational_lamol.modeling import load_pretrained, load_saved
from rational_lamol.pipeline import Session, run_experiment
from rational_lamol.report import load_runs, render_html
from rational_lamol.tasks import load_task
from rationale_commons.errors import DataError
from rationale_commons.synthetic import make_task


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stderr


def one_line_error(*args: object) -> str:
    """Run a command that must fail: exit 2, no traceback, the error as the one last line of stderr
    (a run logs its progress to stderr before it)."""
    code, err = invoke(*args)
    lines = [line for line in err.strip().splitlines() if line]
    errors = [line for line in lines if line.startswith("rational-lamol: error:")]
    assert code == 2 and errors == lines[-1:] and "Traceback" not in err, (code, err)
    return lines[-1]


# -- one run per dir ------------------------------------------------------------------------------

def test_a_second_run_on_a_locked_dir_is_refused_and_writes_nothing(tmp_path: Path, tiny_config,
                                                                   locked_by_another_process) -> None:
    out = tmp_path / "run"
    config = write_toml(tmp_path / "tiny.toml", tiny_config())
    with locked_by_another_process(out):
        line = one_line_error("run", "--config", config, "--out", out, "--resume")
        assert "in use by another running process" in line
    assert [p.name for p in out.iterdir()] == [".lock"]  # not even a line of run.log


# -- safe names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["task", "experiment"])
@pytest.mark.parametrize("name", ["..", "../../x", ".", "", "a/b"])
def test_names_that_escape_the_run_dir_are_config_errors(tiny_config, where: str, name: str) -> None:
    cfg = tiny_config()
    if where == "task":
        cfg["tasks"][0]["name"] = name
    else:
        cfg["name"] = name
    with pytest.raises(DataError, match=r"name"):
        parse_config(cfg)


# -- honest answers -------------------------------------------------------------------------------

def _pair_task(**answers_and_options):
    cfg = {"name": "colours", "data": "synthetic:pair", "max_train": 20, "max_val": 4, "max_test": 4}
    return parse_config({"tasks": [{**cfg, **answers_and_options}]}).tasks[0]


@pytest.mark.parametrize(
    ("answers", "match"),
    [
        ({"yes": "!!!", "no": "no"}, "empty after normalisation"),
        ({"yes": "Same", "no": "same."}, "share the answer 'same'"),
    ],
)
def test_empty_or_shared_answers_are_config_errors(answers: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        _pair_task(answers=answers)


def test_a_label_without_an_answer_is_an_error_unless_the_config_says_use_the_label() -> None:
    labels = sorted({ex.label for ex in make_task("pair", seed=0, n_train=20, n_val=4, n_test=4).train})
    assert labels == ["no", "yes"]
    with pytest.raises(DataError, match=r"labels \['no'\] have no answer"):
        load_task(_pair_task(answers={"yes": "affirmative"}))
    task = load_task(_pair_task(answers={"yes": "affirmative"}, unlisted_labels="label"))
    assert task.answers == {"yes": "affirmative", "no": "no"}
    assert load_task(_pair_task()).answers == {"no": "no", "yes": "yes"}  # no answers: the labels themselves
    with pytest.raises(DataError, match="share the answer 'no'"):  # an answer may not collide with a label
        load_task(_pair_task(answers={"yes": "No"}, unlisted_labels="label"))


# -- the report escapes what comes from a run dir ---------------------------------------------------

def test_values_from_a_run_dir_are_escaped_in_the_report(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    run = {"method": "lamol", "seed": evil, "order": ["a"], "dir": "a/seed0/lamol", "score_matrix": [[50.0]],
           "baseline": [0.0], "metrics": {"acc": 50.0, "bwt": None, "fwt": None, "forgetting": None}}
    (tmp_path / "results.json").write_text(json.dumps({"runs": [run]}), encoding="utf-8")
    (tmp_path / run["dir"]).mkdir(parents=True)
    cci = [{"level": "block", "from_task": "a", "to_task": "b", "chosen": [0], "n_used": evil, "n_skipped": evil,
            "scores": [1.0]}]
    (tmp_path / run["dir"] / "cci.json").write_text(json.dumps(cci), encoding="utf-8")
    page = render_html(load_runs([tmp_path]))
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_run_record_pointing_outside_its_run_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"runs": [{"method": "x", "dir": "../../etc"}]}), encoding="utf-8")
    with pytest.raises(DataError, match="outside the run dir"):
        load_runs([tmp_path])


# -- models that are missing or not what they claim ---------------------------------------------------

def test_a_missing_local_model_folder_is_named_without_asking_the_hub(tmp_path: Path, monkeypatch) -> None:
    import transformers

    def no_network(*args, **kwargs):
        raise AssertionError("tried to load (or download) a model")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", no_network)
    for source in ("./models/nope", str(tmp_path / "nope"), "~/nope/model", "a/b/c"):
        with pytest.raises(DataError, match="model folder does not exist"):
            load_pretrained(ModelConfig(source=source), ["a"])
    line = one_line_error("run", "--model", "./no/such/model", "--out", tmp_path / "run")
    assert "no/such/model: model folder does not exist" in line


def test_a_gguf_file_that_is_not_gguf_is_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"<html>a download error page</html>")
    with pytest.raises(DataError, match="model.gguf: not a GGUF file"):
        load_pretrained(ModelConfig(source=str(fake)), ["a"])


@pytest.mark.parametrize("damage", ["corrupt", "pickle-only", "missing"])
def test_a_damaged_model_folder_is_one_error_naming_it(tmp_path: Path, tiny_gpt2, tiny_tokenizer, damage: str) -> None:
    from rational_lamol.modeling import save_model

    folder = tmp_path / "model"
    save_model(tiny_gpt2(n_layer=1), tiny_tokenizer, folder)
    if damage == "corrupt":
        (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    elif damage == "pickle-only":  # a pickle is never loaded from a run dir, whatever it holds
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    else:
        folder = tmp_path / "absent"
    with pytest.raises(DataError, match=str(folder.name)):
        load_saved(folder)


# -- failures before and during a run ---------------------------------------------------------------

def test_a_run_that_fails_validation_leaves_its_out_reusable(tmp_path: Path, tiny_config) -> None:
    out = tmp_path / "run"
    bad = tiny_config()
    bad["tasks"][0]["question"] = "why " * 80  # cannot fit max_length: found while checking, before training
    with pytest.raises(DataError, match="max_length"):
        run_experiment(parse_config(bad), out)
    assert not (out / "config.json").exists() and not (out / "_shared").exists()
    Session(parse_config(tiny_config()), out)  # the next try is a fresh run, not "already holds a run"
    assert (out / "config.json").is_file()


def test_output_paths_that_cannot_be_written_are_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("mine", encoding="utf-8")
    assert "not a folder" in one_line_error("run", "--out", a_file)
    assert a_file.read_text() == "mine"
    run = {"method": "lamol", "seed": 0, "order": ["a"], "dir": "a", "score_matrix": [[50.0]], "baseline": [0.0],
           "metrics": {"acc": 50.0, "bwt": None, "fwt": None, "forgetting": None}}
    (tmp_path / "results.json").write_text(json.dumps({"runs": [run]}), encoding="utf-8")
    (tmp_path / "a-folder").mkdir()
    assert "is a folder" in one_line_error("report", tmp_path, "--out", tmp_path / "a-folder")
    (tmp_path / "results.json").write_text("{", encoding="utf-8")
    assert "results.json" in one_line_error("report", tmp_path)


@pytest.mark.slow
def test_a_full_disk_during_a_save_is_one_line_and_the_run_resumes(tmp_path: Path, tiny_config, monkeypatch) -> None:
    from transformers import PreTrainedModel

    cfg = tiny_config()
    cfg["methods"] = ["finetune"]
    config, out = write_toml(tmp_path / "tiny.toml", cfg), tmp_path / "run"
    real_save, calls = PreTrainedModel.save_pretrained, {"n": 0}

    def fills_the_disk(self, folder, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the second stage's model (after the shared task-1 copy and stage 1)
            (Path(folder) / "model.safetensors").write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, folder, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", fills_the_disk)
    assert "2_topic/model: No space left on device" in one_line_error("run", "--config", config, "--out", out)
    monkeypatch.setattr(PreTrainedModel, "save_pretrained", real_save)
    run_dir = out / "sentiment-topic" / "seed0" / "finetune"
    assert not (run_dir / "2_topic" / "model").exists() and not list(out.rglob(".*.tmp-*"))
    assert len(json.loads((run_dir / "progress.json").read_text())["stages"]) == 1  # stage 1 kept

    # and a finished stage whose model was damaged afterwards is trained again on resume
    code, err = invoke("run", "--config", config, "--out", out, "--resume")
    assert code == 0, err
    first = json.loads((out / "results.json").read_text())["runs"][0]["score_matrix"]
    (run_dir / "run.json").unlink()
    (run_dir / "2_topic" / "model" / "model.safetensors").write_bytes(b"rot")
    code, err = invoke("run", "--config", config, "--out", out, "--resume")
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["runs"][0]["score_matrix"] == first

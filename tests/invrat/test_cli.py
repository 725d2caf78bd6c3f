"""The `invrat` CLI end to end on a tiny synthetic set, resume after a kill, and every bad-input case."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import invrat.game as game
import invrat.players as players_module
import invrat.run_dir as run_dir_module
from invrat import InvRatConfig, dev_metrics, rationalize, selection, to_annotations, train_invrat
from invrat.cli import app
from invrat.data import prepare
from invrat.model import build_players
from invrat.vocab import Vocab
from rationale_commons.eraser_io import write_eraser
from rationale_commons.errors import DataError
from rationale_commons.synthetic import make_task

TINY = """
hidden_dim = 8
embedding_dim = 8
epochs = 2
warmup_epochs = 1
restarts = 1
batch_size = 16
progress = false
num_threads = 1
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    splits = make_task("pair", seed=0, n_train=40, n_val=10, n_test=12, doc_words=(10, 16))
    data = write_eraser(splits, root / "data")
    config = root / "tiny.toml"
    config.write_text(TINY, encoding="utf-8")
    return {"root": root, "data": data, "config": config}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def one_line_error(*args: object) -> str:
    """Run a command that must fail: one line on stderr, a non-zero exit, no traceback."""
    code, out, err = run(*[str(a) for a in args])
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("invrat: error:"), err
    assert "Traceback" not in err
    return lines[0]


def test_train_rationalize_evaluate_show(tiny: dict[str, Path]) -> None:
    root, data = tiny["root"], tiny["data"]
    code, out, err = run("train", data, "--out", root / "run", "--config", tiny["config"])
    assert code == 0, err
    run_dir = root / "run"
    for name in ("config.json", "metrics.json", "model.safetensors", "vocab.json", "labels.json", "checkpoint.pt", "DONE"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [0, 1]
    assert json.loads((run_dir / "config.json").read_text())["players"]["hidden_dim"] == 8

    code, out, err = run("rationalize", run_dir, data, "--split", "test", "--out", root / "ann.jsonl")
    assert code == 0, err
    ann = [json.loads(line) for line in (root / "ann.jsonl").read_text().splitlines()]
    test = make_task("pair", seed=0, n_train=40, n_val=10, n_test=12, doc_words=(10, 16)).test
    assert [a["annotation_id"] for a in ann] == [ex.id for ex in test]  # the input's order
    for a, ex in zip(ann, test, strict=True):
        assert a["query"] == ex.query
        for group in a["evidences"]:
            for ev in group:  # spans over document words only (never the appended query)
                assert 0 <= ev["start_token"] < ev["end_token"] <= len(ex.words)

    code, out, err = run("rationalize", run_dir, data, "--out", root / "res.jsonl", "--format", "results")
    assert code == 0, err
    res = [json.loads(line) for line in (root / "res.jsonl").read_text().splitlines()]
    assert len(res) == len(test)
    assert len(res[0]["rationales"][0]["soft_rationale_predictions"]) == len(test[0].words)
    assert set(res[0]["classification_scores"]) == {"no", "yes"}

    code, out, err = run("rationalize", run_dir, data, "--out", root / "top.jsonl", "--format", "results",
                         "--selection", "top_alpha")
    assert code == 0, err
    for line, ex in zip((root / "top.jsonl").read_text().splitlines(), test, strict=True):  # never empty
        assert json.loads(line)["rationales"][0]["hard_rationale_predictions"], ex.id
    assert "top_alpha" in one_line_error("rationalize", run_dir, data, "--out", root / "x.jsonl", "--selection", "all")

    code, out, err = run("evaluate", root / "res.jsonl", "--gold", data, "--json", root / "scores.json")
    assert code == 0, err
    summary = json.loads((root / "scores.json").read_text())["summary"]
    for key in ("token_f1", "token_f1_micro", "iou_f1", "auprc", "accuracy"):
        assert 0.0 <= summary[key] <= 1.0, key
    code, out, err = run("evaluate", root / "ann.jsonl", "--gold", data)  # annotation lines score as hard predictions
    assert code == 0 and "token_f1" in out, err

    code, out, err = run("show", root / "res.jsonl", "--data", data, "--html", root / "page.html")
    assert code == 0, err
    page = (root / "page.html").read_text()
    assert page.startswith("<!doctype html>") and "gold rationale" in page and test[0].id in page

    # the library API gives the same masks as the CLI
    rats = rationalize(run_dir, test)
    assert [r.mask for r in rats] == [
        [int(any(s <= i < e for s, e in ((h["start_token"], h["end_token"]) for h in r["rationales"][0]["hard_rationale_predictions"]))) for i in range(len(ex.words))]
        for r, ex in zip(res, test, strict=True)
    ]
    assert to_annotations(test, rats)[0].annotation_id == test[0].id


def test_top_alpha_selection_is_what_model_selection_judges(tmp_path: Path) -> None:
    """With selection = top_alpha, dev metrics (and so the kept model) read the top-alpha rationale."""
    splits = make_task("sentiment", seed=2, n_train=24, n_val=8, n_test=4, doc_words=(10, 10))
    config = InvRatConfig(hidden_dim=8, embedding_dim=8, epochs=2, restarts=1, alpha=0.2, selection="top_alpha",
                          progress=False, num_threads=1, device="cpu")
    run_dir = train_invrat(splits, config, tmp_path / "run")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert all(m["dev_selection_rate"] == pytest.approx(0.2) for m in metrics)  # ceil(0.2 * 10) of 10 words
    assert all(sum(r.mask) == 2 for r in rationalize(run_dir, splits.test))


def test_fixed_budget_training_selects_alpha_of_every_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train_selection = top_alpha: every generator mask drawn in training holds ceil(alpha * n) words."""
    splits = make_task("sentiment", seed=3, n_train=24, n_val=8, n_test=4, doc_words=(10, 10))
    config = InvRatConfig(hidden_dim=8, embedding_dim=8, epochs=2, warmup_epochs=1, restarts=1, alpha=0.2,
                          train_selection="top_alpha", selection="top_alpha", progress=False, num_threads=1, device="cpu")
    drawn: list[list[float]] = []
    real_select = players_module.select

    def recording_select(*args, **kwargs):
        z, probs = real_select(*args, **kwargs)
        drawn.append(z.detach().sum(dim=1).tolist())
        return z, probs

    monkeypatch.setattr(players_module, "select", recording_select)
    run_dir = train_invrat(splits, config, tmp_path / "run")
    assert drawn and all(k == 2.0 for row in drawn for k in row)  # ceil(0.2 * 10) = 2 of 10 words
    assert json.loads((run_dir / "config.json").read_text())["experimental"]["train_selection"] == "top_alpha"


def test_generator_steps_draw_their_own_batch_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """generator_batch_size: every generator step sees that many examples; the predictors keep batch_size."""
    splits = make_task("sentiment", seed=3, n_train=40, n_val=8, n_test=4, doc_words=(10, 10), polluted=True)
    config = InvRatConfig(hidden_dim=8, embedding_dim=8, epochs=2, warmup_epochs=1, restarts=1, batch_size=8,
                          generator_batch_size=24, schedule=["g", "fi", "fe"], progress=False, num_threads=1, device="cpu")
    seen: dict[str, set[int]] = {}
    real_step = game.player_step

    def recording_step(player, players, opts, b, *args, **kwargs):
        seen.setdefault(player, set()).add(int(b.ids.shape[0]))
        return real_step(player, players, opts, b, *args, **kwargs)

    monkeypatch.setattr(game, "player_step", recording_step)
    train_invrat(splits, config, tmp_path / "run")
    assert seen["g"] == {24} and seen["fi"] == seen["fe"] == {8}


def test_residual_env_predictor_starts_at_f_i_and_learns_a_correction(tmp_path: Path) -> None:
    """env_residual: f_e's logits are f_i's plus a correction that starts at zero, so L_e = L_i at first."""
    splits = make_task("sentiment", seed=1, n_train=32, n_val=16, n_test=4, doc_words=(10, 10), polluted=True)
    config = InvRatConfig(hidden_dim=8, embedding_dim=8, epochs=2, warmup_epochs=1, restarts=1, batch_size=8,
                          env_residual=True, select_by="invariance", progress=False, num_threads=1, device="cpu")
    vocab = Vocab.build(list(splits.train))
    players = build_players(config, len(vocab), 2, 2, None)
    assert players["fe"].head.weight.abs().sum() == 0 and players["fe"].head.bias.abs().sum() == 0
    index = {"negative": 0, "positive": 1}
    envs = sorted({ex.env for ex in splits.val})
    data = prepare(list(splits.val), vocab, index, config, [envs.index(ex.env) for ex in splits.val])
    first = dev_metrics.evaluate_players(players, data, config, "cpu")
    assert first["dev_loss_e"] == pytest.approx(first["dev_loss"], abs=1e-6)
    last = json.loads((train_invrat(splits, config, tmp_path / "run") / "metrics.json").read_text())[-1]
    assert last["dev_loss_e"] != pytest.approx(last["dev_loss"], abs=1e-6)  # the correction was trained


def test_resume_after_kill_matches_uninterrupted_run(tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    splits = make_task("sentiment", seed=1, n_train=32, n_val=8, n_test=4, doc_words=(8, 12), polluted=True)
    cfg = InvRatConfig(hidden_dim=6, embedding_dim=6, epochs=3, warmup_epochs=1, restarts=2, batch_size=16,
                       progress=False, num_threads=1)
    full = train_invrat(splits, cfg, tiny["root"] / "full")

    real_save = run_dir_module.atomic_torch_save
    calls = {"n": 0}

    def killed_after_two(obj: object, path: Path) -> None:
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == 4:  # restart 1, epoch 0 written: the process dies here
            raise KeyboardInterrupt

    monkeypatch.setattr(run_dir_module, "atomic_torch_save", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        train_invrat(splits, cfg, tiny["root"] / "killed")
    monkeypatch.setattr(run_dir_module, "atomic_torch_save", real_save)
    assert not (tiny["root"] / "killed" / "DONE").exists()
    # metrics.json follows the checkpoint: the 4th epoch is in checkpoint.pt, not yet in metrics.json
    assert len(json.loads((tiny["root"] / "killed" / "metrics.json").read_text())) == 3

    with pytest.raises(Exception, match="--resume"):
        train_invrat(splits, cfg, tiny["root"] / "killed")
    resumed = train_invrat(splits, cfg, tiny["root"] / "killed", resume=True)
    m_full = json.loads((full / "metrics.json").read_text())
    m_res = json.loads((resumed / "metrics.json").read_text())
    key = lambda ms: [(m["restart"], m["epoch"], m["dev_acc"], round(m["dev_selection_rate"], 6)) for m in ms]  # noqa: E731
    assert key(m_res) == key(m_full)
    a, b = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)
    assert train_invrat(splits, cfg, resumed, resume=True) == resumed  # finished: nothing to do


def test_bad_inputs_are_one_line_errors(tiny: dict[str, Path]) -> None:
    root, config = tiny["root"], tiny["config"]
    bad = root / "bad"
    bad.mkdir()

    table = bad / "rows.jsonl"
    table.write_text('{"text": "good movie", "label": "pos"}\n{"text": "bad film", "label": "neg"}\n', encoding="utf-8")
    assert "review" in one_line_error("train", table, "--out", bad / "r1", "--config", config, "--text-column", "review")

    empty = bad / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    one_line_error("train", empty, "--out", bad / "r2", "--config", config)

    folder = bad / "labels"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        "".join(json.dumps({"text": f"w{i} x y", "label": "pos" if i % 2 else "neg"}) + "\n" for i in range(12)), encoding="utf-8"
    )
    (folder / "val.jsonl").write_text('{"text": "a b", "label": "neutral"}\n', encoding="utf-8")
    assert "neutral" in one_line_error("train", folder, "--out", bad / "r3", "--config", config)

    not_run = bad / "not_a_run"
    not_run.mkdir()
    assert "run dir" in one_line_error("rationalize", not_run, tiny["data"], "--out", bad / "x.jsonl")
    one_line_error("rationalize", bad / "missing_dir", tiny["data"], "--out", bad / "x.jsonl")
    one_line_error("evaluate", empty, "--gold", tiny["data"])
    one_line_error("train", tiny["data"], "--out", bad / "r4", "--config", bad / "nope.toml")
    (bad / "typo.toml").write_text("hiden_dim = 3\n", encoding="utf-8")
    assert "hiden_dim" in one_line_error("train", tiny["data"], "--out", bad / "r5", "--config", bad / "typo.toml")
    (bad / "r6").mkdir()
    (bad / "r6" / "something").write_text("x", encoding="utf-8")
    assert "--resume" in one_line_error("train", tiny["data"], "--out", bad / "r6", "--config", config)
    assert "not an invrat run dir" in one_line_error("train", tiny["data"], "--out", bad / "r6", "--config", config, "--resume")
    (bad / "invariance.toml").write_text(config.read_text(encoding="utf-8") + 'select_by = "invariance"\n', encoding="utf-8")
    assert "select_by='invariance'" in one_line_error("train", tiny["data"], "--out", bad / "r7", "--config", bad / "invariance.toml")
    assert not (bad / "r7" / "metrics.json").exists()


def test_resume_with_more_epochs_trains_a_finished_run_on(tiny: dict[str, Path]) -> None:
    splits = make_task("sentiment", seed=1, n_train=32, n_val=8, n_test=4, doc_words=(8, 12), polluted=True)
    cfg = InvRatConfig(hidden_dim=6, embedding_dim=6, epochs=3, warmup_epochs=1, restarts=1, batch_size=16,
                       progress=False, num_threads=1)
    full = train_invrat(splits, cfg, tiny["root"] / "grow-full")
    short = train_invrat(splits, cfg.model_copy(update={"epochs": 2}), tiny["root"] / "grow-short")
    assert train_invrat(splits, cfg.model_copy(update={"epochs": 2}), short, resume=True) == short  # finished: as is
    longer = train_invrat(splits, cfg, short, resume=True)
    key = lambda ms: [(m["epoch"], m["dev_acc"], round(m["dev_selection_rate"], 6)) for m in ms]  # noqa: E731
    assert key(json.loads((longer / "metrics.json").read_text())) == key(json.loads((full / "metrics.json").read_text()))
    assert json.loads((longer / "config.json").read_text())["game"]["epochs"] == 3 and (longer / "DONE").is_file()
    # several restarts: the earlier ones would not get the new epochs, so it is refused
    multi = train_invrat(splits, cfg.model_copy(update={"restarts": 2, "epochs": 2}), tiny["root"] / "grow-multi")
    with pytest.raises(DataError, match="epochs"):
        train_invrat(splits, cfg.model_copy(update={"restarts": 2}), multi, resume=True)
    assert (multi / "DONE").is_file()  # a refused resume leaves the finished run as it was


def test_model_selection_breaks_accuracy_ties_on_dev_loss() -> None:
    first = {"eligible": True, "dev_acc": 0.8, "dev_loss": 0.6}
    later = {"eligible": True, "dev_acc": 0.8, "dev_loss": 0.5}
    assert selection.selection_key(later) > selection.selection_key(first)
    assert selection.selection_key({"eligible": True, "dev_acc": 0.81, "dev_loss": 0.9}) > selection.selection_key(later)
    assert selection.selection_key({"eligible": False, "dev_acc": 1.0, "dev_loss": 0.0}) < selection.selection_key(first)
    assert selection.selection_key({"eligible": True, "dev_acc": 0.8}) < selection.selection_key(first)  # a run from before dev_loss


def test_invariance_selection_charges_the_dev_environment_gap() -> None:
    # the epoch holding a spurious feature: lower dev loss and higher accuracy, but far apart across environments
    spurious = {"eligible": True, "dev_acc": 0.80, "dev_loss": 0.43, "dev_loss_by_env": [0.27, 0.59]}
    invariant = {"eligible": True, "dev_acc": 0.75, "dev_loss": 0.57, "dev_loss_by_env": [0.565, 0.58]}
    for record in (spurious, invariant):
        record["dev_objective"] = selection.dev_objective(record, 5.0)
    assert invariant["dev_objective"] == pytest.approx(0.57 + 5 * 0.015)
    assert selection.selection_key(spurious) > selection.selection_key(invariant)  # the paper's accuracy
    assert selection.selection_key(invariant, "invariance") > selection.selection_key(spurious, "invariance")
    assert selection.dev_objective({"dev_loss": 0.5}, 5.0) is None
    assert selection.selection_key({"eligible": False, "dev_acc": 1.0, "dev_objective": 0.0}, "invariance") < selection.selection_key(
        invariant, "invariance")


def test_invariance_selection_can_forgive_the_gap_chance_explains() -> None:
    # an invariant rationale whose dev sample happens to make env 0 harder, and an epoch leaning on a
    # spurious feature that closes that chance gap: the raw gap prefers the second, one SE of slack the first
    se = [0.017, 0.017]
    invariant = {"eligible": True, "dev_loss": 0.482, "dev_loss_by_env": [0.497, 0.467], "dev_loss_se_by_env": se}
    leaning = {"eligible": True, "dev_loss": 0.490, "dev_loss_by_env": [0.487, 0.493], "dev_loss_se_by_env": se}
    for slack, winner in ((0.0, leaning), (1.0, invariant)):
        for record in (invariant, leaning):
            record["dev_objective"] = selection.dev_objective(record, 1.0, slack)
        loser = leaning if winner is invariant else invariant
        assert selection.selection_key(winner, "invariance") > selection.selection_key(loser, "invariance")
    assert invariant["dev_objective"] == pytest.approx(0.482 + 0.030 - math.hypot(*se))
    assert leaning["dev_objective"] == pytest.approx(0.490)  # a gap within its noise costs nothing
    old = {"dev_loss": 0.482, "dev_loss_by_env": [0.497, 0.467]}  # a run from before the SE was logged: raw gap
    assert selection.dev_objective(old, 1.0, 1.0) == pytest.approx(0.482 + 0.030)


def test_dev_environment_losses_carry_their_standard_errors() -> None:
    splits = make_task("sentiment", seed=2, n_train=32, n_val=24, n_test=4, doc_words=(8, 12), polluted=True)
    config = InvRatConfig(hidden_dim=6, embedding_dim=6, progress=False, num_threads=1, device="cpu")
    vocab = Vocab.build(list(splits.train))
    torch.manual_seed(0)
    players = build_players(config, len(vocab), 2, 2, None)
    val, index = list(splits.val), {"negative": 0, "positive": 1}
    names = sorted({ex.env for ex in val})
    envs = [names.index(ex.env) for ex in val]
    whole = dev_metrics.evaluate_players(players, prepare(val, vocab, index, config, envs), config, "cpu")
    single = [dev_metrics.evaluate_players(players, prepare([ex], vocab, index, config, [env]), config, "cpu")["dev_loss"]
              for ex, env in zip(val, envs, strict=True)]
    for k in range(2):
        losses = np.array([loss for loss, env in zip(single, envs, strict=True) if env == k])
        assert len(losses) > 2
        assert whole["dev_loss_by_env"][k] == pytest.approx(losses.mean(), rel=1e-5)
        assert whole["dev_loss_se_by_env"][k] == pytest.approx(losses.std(ddof=1) / np.sqrt(len(losses)), rel=1e-3)


def test_invariance_selection_trains_and_logs_environment_losses(tmp_path: Path) -> None:
    splits = make_task("sentiment", seed=0, n_train=48, n_val=16, n_test=4, polluted=True, doc_words=(8, 12))
    cfg = InvRatConfig(hidden_dim=6, embedding_dim=6, epochs=2, warmup_epochs=1, restarts=1, batch_size=16,
                       progress=False, num_threads=1, select_by="invariance")
    run_dir = train_invrat(splits, cfg, tmp_path / "run")
    game_epoch = json.loads((run_dir / "metrics.json").read_text())[-1]
    assert len(game_epoch["dev_loss_by_env"]) == 2 and game_epoch["dev_loss_e"] > 0
    assert game_epoch["dev_objective"] == pytest.approx(selection.dev_objective(game_epoch, cfg.game.lambda_diff))
    assert "dev_objective" in json.loads((run_dir / "selection.json").read_text())
    # the gap's weight in selection can differ from the game's lambda_diff, and the gap can forgive its own noise
    weighed = json.loads((train_invrat(splits, cfg.model_copy(update={"selection_lambda": 1.0, "selection_gap_slack": 1.0}),
                                       tmp_path / "weighed") / "metrics.json").read_text())[-1]
    assert weighed["dev_objective"] == pytest.approx(selection.dev_objective(weighed, 1.0, 1.0))
    assert weighed["dev_objective"] != pytest.approx(selection.dev_objective(weighed, 1.0))
    assert cfg.game.lambda_diff != 1.0 and weighed["dev_loss_by_env"][0] != weighed["dev_loss_by_env"][1]
    # the plain RNP reads no environment information: its criterion is the dev loss of f_i
    rnp_epoch = json.loads((train_invrat(splits, cfg.model_copy(update={"use_env_player": False}), tmp_path / "rnp")
                            / "metrics.json").read_text())[-1]
    assert "dev_loss_e" not in rnp_epoch and rnp_epoch["dev_objective"] == rnp_epoch["dev_loss"]
    # no environments on the dev examples: a one-line error before training
    bare = splits.model_copy(update={"val": [ex.model_copy(update={"env": None}) for ex in splits.val]})
    with pytest.raises(DataError, match="select_by='invariance' needs an environment"):
        train_invrat(bare, cfg, tmp_path / "bare")
    with pytest.raises(DataError, match="select_by='invariance'"):
        train_invrat(splits, cfg.model_copy(update={"environments": "single"}), tmp_path / "single")
    assert not (tmp_path / "single" / "metrics.json").exists()


def test_resume_accepts_a_flat_run_config_written_before_a_config_field_existed(tiny: dict[str, Path]) -> None:
    splits = make_task("sentiment", seed=0, n_train=32, n_val=8, n_test=4)
    cfg = InvRatConfig(hidden_dim=6, embedding_dim=6, epochs=2, warmup_epochs=1, restarts=1, batch_size=16,
                       progress=False, num_threads=1)
    run_dir = train_invrat(splits, cfg.model_copy(update={"epochs": 1}), tiny["root"] / "old-run")
    saved = InvRatConfig.model_validate_json((run_dir / "config.json").read_text()).flat()
    del saved["select_by"]  # as a run written before the config had sections and before the field was added
    (run_dir / "config.json").write_text(json.dumps(saved))
    assert rationalize(run_dir, splits.test)  # an old run rationalizes
    assert train_invrat(splits, cfg, run_dir, resume=True) == run_dir
    assert len(json.loads((run_dir / "metrics.json").read_text())) == 2
    with pytest.raises(DataError, match="select_by"):  # but a different value is still refused
        train_invrat(splits, cfg.model_copy(update={"select_by": "invariance", "epochs": 3}), run_dir, resume=True)

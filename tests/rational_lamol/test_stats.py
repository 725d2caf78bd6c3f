"""Paired comparisons in `rational-lamol report`: differences, bootstrap interval, sign test."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rational_lamol.cli import app
from rational_lamol.results import build_run_record, write_results
from rational_lamol.stats import (
    binomial_upper_tail,
    bootstrap_interval,
    compare,
    paired_differences,
    sign_test,
)
from rationale_commons.errors import DataError


def _record(method, seed, order, acc_row):
    """A 2-task run whose final row is ``acc_row`` (its diagonal 100, so BWT = row[0] - 100)."""
    return build_run_record(method=method, seed=seed, order=order, rel_dir=f"{'-'.join(order)}/seed{seed}/{method}",
                            rows=[[100.0, 0.0], acc_row], baseline=[0.0, 0.0])


def test_sign_test_exact_values():
    assert sign_test([1.0] * 10) == pytest.approx(2 / 1024)
    assert sign_test([1, -1]) == 1.0
    # 8 wins, 2 losses of 10: 2 * P(X <= 2) = 2 * (1 + 10 + 45) / 1024
    assert sign_test([1] * 8 + [-1] * 2 + [0, 0]) == pytest.approx(2 * 56 / 1024)
    assert sign_test([0.0, 0.0]) is None


def test_bootstrap_interval_brackets_the_mean_and_is_seeded():
    values = [1.0, 3.0, 2.0, 5.0, -1.0, 4.0]
    low, high = bootstrap_interval(values)
    assert low < sum(values) / len(values) < high
    assert bootstrap_interval(values) == (low, high)
    assert bootstrap_interval([2.0, 2.0]) == (2.0, 2.0)
    assert bootstrap_interval([]) is None


def test_pairs_by_seed_and_order():
    records = [
        _record("lamol", 0, ["a", "b"], [50.0, 100.0]),
        _record("lamol", 0, ["b", "a"], [70.0, 100.0]),
        _record("lamol", 1, ["a", "b"], [60.0, 100.0]),
        _record("rational-head", 0, ["b", "a"], [80.0, 100.0]),
        _record("rational-head", 0, ["a", "b"], [40.0, 100.0]),
    ]
    # pairs (0, a-b): 70 - 75 = -5; (0, b-a): 90 - 85 = +5; seed 1 has no rational-head run
    assert paired_differences(records, "rational-head", "lamol", "acc") == [-5.0, 5.0]
    row = compare(records, "rational-head", "lamol", "bwt")
    assert row["n_pairs"] == 2 and row["mean_difference"] == 0.0 and (row["wins"], row["losses"]) == (1, 1)
    with pytest.raises(DataError, match="twice"):
        paired_differences(records + [records[0]], "rational-head", "lamol", "acc")


def test_report_writes_paired_comparisons(tmp_path):
    records = []
    for seed in range(3):
        for order in (["a", "b"], ["b", "a"]):
            records.append(_record("lamol", seed, order, [60.0, 100.0]))
            records.append(_record("rational-head", seed, order, [70.0 + seed, 100.0]))
            records.append(_record("random-head", seed, order, [70.0 + seed, 100.0]))
    write_results(tmp_path, records)
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "report.json").read_text())
    rows = {(r["method"], r["against"], r["metric"]): r for r in data["comparisons"]}
    vs_lamol = rows[("rational-head", "lamol", "acc")]
    assert vs_lamol["n_pairs"] == 6 and vs_lamol["mean_difference"] == pytest.approx(5.5)
    assert vs_lamol["wins"] == 6 and vs_lamol["sign_test_p"] == pytest.approx(2 / 64)
    assert vs_lamol["ci95"][0] > 0
    vs_control = rows[("rational-head", "random-head", "acc")]
    assert vs_control["mean_difference"] == 0 and vs_control["ties"] == 6 and vs_control["sign_test_p"] is None
    assert rows[("random-head", "lamol", "bwt")]["n_pairs"] == 6
    assert "Paired differences" in res.output and "Paired differences" in (tmp_path / "report.html").read_text()


def test_binomial_upper_tail_matches_scipy():
    from scipy.stats import binom  # scikit-learn's dependency: a test oracle only

    for k, n, rate in [(51, 200, 0.25), (50, 60, 0.5), (31, 60, 0.5667), (3, 10, 0.9), (900, 1000, 0.5)]:
        assert binomial_upper_tail(k, n, rate) == pytest.approx(binom.sf(k - 1, n, rate), rel=1e-9, abs=1e-300)
    assert binomial_upper_tail(0, 10, 0.5) == 1.0 and binomial_upper_tail(4, 10, 0.0) == 0.0


def test_report_names_the_tasks_a_method_never_learned(tmp_path):
    """A diagonal no better than the majority class (binomial test) is flagged per run and task."""
    records = [
        build_run_record(method="lamol", seed=0, order=["a", "b"], rel_dir="a-b/seed0/lamol",
                         rows=[[90.0, 0.0], [80.0, 26.0]], baseline=[0.0, 0.0]),  # b: 26% of 200 vs 25% majority
        build_run_record(method="lamol", seed=0, order=["b", "a"], rel_dir="b-a/seed0/lamol",
                         rows=[[95.0, 0.0], [70.0, 90.0]], baseline=[0.0, 0.0]),
        build_run_record(method="multitask", seed=0, order=["a", "b"], rel_dir="a-b/seed0/multitask",
                         rows=[[10.0, 10.0]], baseline=[0.0, 0.0]),  # one row: not judged
    ]
    write_results(tmp_path, records)
    (tmp_path / "task_baselines.json").write_text(json.dumps({
        "a": {"n_train": 100, "n_test": 200, "majority": 50.0, "tfidf_logreg": 80.0},
        "b": {"n_train": 100, "n_test": 200, "majority": 25.0, "tfidf_logreg": 60.0}}))
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 0, res.output
    unlearned = json.loads((tmp_path / "report.json").read_text())["unlearned"]
    assert [(t["method"], t["task"], t["position"], t["order"]) for t in unlearned["tasks"]] == [
        ("lamol", "b", 2, ["a", "b"])]
    assert 0.05 < unlearned["tasks"][0]["p"] < 1
    assert unlearned["warnings"] == [
        "lamol: 1 of 2 run(s) left a task no better than its majority class right after training it; "
        "e.g. b (task 2 of a -> b, seed 0): 26.0 vs majority 25.0"]
    assert "warning: lamol: 1 of 2 run(s)" in res.output
    assert "Tasks never learned" in (tmp_path / "report.html").read_text()

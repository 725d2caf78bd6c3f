"""Lifelong metrics on hand-computed score matrices (docs/algorithms.md §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rationale_commons.metrics.lifelong import (
    METRIC_DEFINITIONS,
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    lifelong_metrics,
)

# Three tasks. Row i = scores after training task i.
#        t0   t1   t2
R3 = [
    [90, 10, 20],  # after t0
    [60, 80, 30],  # after t1
    [50, 70, 85],  # after t2
]
B3 = [5, 15, 25]  # before any training


def test_acc_is_mean_of_last_row() -> None:
    # (50 + 70 + 85) / 3 = 205 / 3
    assert average_accuracy(R3) == pytest.approx(205 / 3)


def test_bwt_hand_computed() -> None:
    # j=0: 50 - 90 = -40; j=1: 70 - 80 = -10; mean = -25
    assert backward_transfer(R3) == pytest.approx(-25.0)


def test_fwt_hand_computed() -> None:
    # j=1: R[0][1] - b1 = 10 - 15 = -5; j=2: R[1][2] - b2 = 30 - 25 = 5; mean = 0
    assert forward_transfer(R3, B3) == pytest.approx(0.0)
    assert forward_transfer(R3, [0, 0, 0]) == pytest.approx((10 + 30) / 2)


def test_forgetting_hand_computed() -> None:
    # j=0: max(90, 60) - 50 = 40; j=1: max(10, 80) - 70 = 10; mean = 25
    assert forgetting(R3) == pytest.approx(25.0)


def test_forgetting_differs_from_bwt_when_peak_is_not_diagonal() -> None:
    # Task 0 improves after task 1 and then drops: the peak is R[1][0] = 0.9.
    r = [[0.5, 0.0, 0.0], [0.9, 0.8, 0.0], [0.4, 0.8, 0.7]]
    # bwt: (0.4 - 0.5 + 0.8 - 0.8) / 2 = -0.05; forgetting: (0.9 - 0.4 + 0.8 - 0.8) / 2 = 0.25
    assert backward_transfer(r) == pytest.approx(-0.05)
    assert forgetting(r) == pytest.approx(0.25)


def test_lifelong_metrics_keys_and_values() -> None:
    out = lifelong_metrics(R3, B3)
    assert set(out) == {"acc", "bwt", "fwt", "forgetting"} == set(METRIC_DEFINITIONS)
    assert out == pytest.approx({"acc": 205 / 3, "bwt": -25.0, "fwt": 0.0, "forgetting": 25.0})


def test_no_baseline_gives_no_fwt() -> None:
    assert lifelong_metrics(R3)["fwt"] is None


def test_single_task_is_undefined_not_zero() -> None:
    out = lifelong_metrics([[0.7]], [0.1])
    assert out == {"acc": pytest.approx(0.7), "bwt": None, "fwt": None, "forgetting": None}


def test_single_row_multitask_gives_acc_only() -> None:
    out = lifelong_metrics([[0.5, 0.7, 0.9]], [0.0, 0.0, 0.0])
    assert out["acc"] == pytest.approx(0.7)
    assert out["bwt"] is None and out["fwt"] is None and out["forgetting"] is None


def test_numpy_input_and_no_forgetting() -> None:
    r = np.array([[1.0, 0.0], [1.0, 1.0]])
    out = lifelong_metrics(r, np.zeros(2))
    assert out == {"acc": 1.0, "bwt": 0.0, "fwt": 0.0, "forgetting": 0.0}


def test_missing_upper_triangle() -> None:
    # Only tasks seen so far were scored: ACC, BWT, forgetting defined; FWT needs R[0][1].
    r = [[0.9, None], [0.6, 0.8]]
    out = lifelong_metrics(r, [0.0, 0.0])
    assert out["acc"] == pytest.approx(0.7)
    assert out["bwt"] == pytest.approx(-0.3)
    assert out["forgetting"] == pytest.approx(0.3)
    assert out["fwt"] is None
    # NaN means missing too.
    assert lifelong_metrics([[0.9, math.nan], [0.6, 0.8]], [0, 0])["fwt"] is None


def test_missing_last_row_entry_gives_none() -> None:
    out = lifelong_metrics([[0.9, 0.1], [None, 0.8]])
    assert out["acc"] is None and out["bwt"] is None and out["forgetting"] is None


@pytest.mark.parametrize(
    "bad",
    [
        [],
        [[]],
        [[0.1, 0.2], [0.3]],  # ragged
        [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],  # 3 x 2
        [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],  # 2 x 3
        [0.1, 0.2],  # not 2-D
        [[math.inf]],
    ],
)
def test_bad_shapes_raise(bad: object) -> None:
    with pytest.raises(ValueError):
        lifelong_metrics(bad)  # type: ignore[arg-type]


def test_baseline_length_must_match() -> None:
    with pytest.raises(ValueError, match="baseline"):
        lifelong_metrics(R3, [0.0, 0.0])

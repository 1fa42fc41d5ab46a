"""Display formatting of board cells: numbers rounded to their uncertainty, deterministic repeats,
no scientific notation in the everyday range, fit times, typeset units."""

from __future__ import annotations

import pytest

from phonbench.leaderboard.render import fmt, fmt_mean_std, fmt_seconds, pretty_unit


@pytest.mark.parametrize("mean, std, n, text", [
    (0.01915, 1.6e-5, 3, "0.019150 ± 0.000016"),  # std to 2 significant digits, mean to the same place
    (15.33, 0.37, 3, "15.33 ± 0.37"),
    (36.24, 2.8, 5, "36.2 ± 2.8"),
    (324.3, 20.4, 5, "324 ± 20"),
    (3243.3, 171.0, 3, "3240 ± 170"),
    (0.1, 0.0996, 3, "0.10 ± 0.10"),  # std rounds up into the next decade
    (-1.85, 0.72, 3, "-1.85 ± 0.72"),
    (101.7, 0.0, 3, "101.7 (deterministic)"),
    (0.4072, 6.8e-17, 3, "0.4072 (deterministic)"),  # floating-point noise of identical repeats
    (116.1, 1.7e-14, 3, "116.1 (deterministic)"),
    (0.5, 0.0, 1, "0.5"),  # a single run: the mean alone
    (0.5, float("nan"), 2, "0.5"),
    (float("nan"), 0.1, 3, "–"),
])
def test_mean_std_is_rounded_to_its_uncertainty(mean, std, n, text):
    assert fmt_mean_std(mean, std, n) == text


@pytest.mark.parametrize("x, text", [
    (12345.6, "12350"), (99994.0, "99990"), (0.00012345, "0.0001234"), (2.62, "2.62"), (0.02, "0.02"),
    (0.0, "0"), (1.5e6, "1.5e+06"), (1e-5, "1e-05"), (None, "–"),
])
def test_plain_notation_between_1e_minus_4_and_1e5(x, text):
    assert fmt(x) == text


@pytest.mark.parametrize("x, text", [
    (1450.3, "1,450"), (434.2, "434"), (100.0, "100"), (10.34, "10.3"), (0.00027, "< 0.001"), (0.0031, "0.0031"),
    (float("nan"), "–"),
])
def test_fit_times(x, text):
    assert fmt_seconds(x) == text


@pytest.mark.parametrize("raw, shown", [
    ("cm^-1", "cm⁻¹"), ("(a.u.)^2", "a.u.²"), ("THz^2", "THz²"), ("(cm^-1)^2", "(cm⁻¹)²"), ("a.u.", "a.u."),
    ("THz", "THz"),
])
def test_units_are_typeset(raw, shown):
    assert pretty_unit(raw) == shown

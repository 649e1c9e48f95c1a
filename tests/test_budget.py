import pytest

from factory.budget import format_count, parse_budget
from factory.errors import FactoryError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.3M", 300_000),
        ("300k", 300_000),
        ("300000", 300_000),
        ("12.5M", 12_500_000),
        ("1.5K", 1_500),
        (" 2m ", 2_000_000),
        ("1G", 1_000_000_000),
        (".5M", 500_000),
        (42, 42),
    ],
)
def test_good_budgets(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["-1", "-0.3M", "0", "0k", "0.3X", "", "  ", "M", "1e6", "3..2M", "abc", True])
def test_bad_budgets_are_clear_errors(text):
    with pytest.raises(FactoryError) as info:
        parse_budget(text, "--budget-params")
    message = str(info.value)
    assert "--budget-params" in message
    assert "\n" not in message


def test_none_means_no_budget():
    assert parse_budget(None) is None


def test_format_count():
    assert format_count(300_000) == "300.0k"
    assert format_count(12_500_000) == "12.50M"
    assert format_count(None) == "-"

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


def test_figures_round_trip_through_the_run_folder_s_record_keys():
    import pytest

    from factory.budget.feasibility import Budget
    from factory.budget.figures import Figures

    figures = Figures(1200, 34_000, flash=5_000, ram=700, latency=0.25)
    record = figures.to_record()
    assert record == {"params": 1200, "macs": 34_000, "latency_ms": 0.25, "flash_bytes": 5_000, "ram_bytes": 700}
    assert Figures.from_record(record) == figures and figures.value("flash") == 5000.0
    assert Figures.from_record({"params": 3, "macs": 4}) == Figures(3, 4)
    assert Budget(params=1200, ram=700).admits(figures) and not Budget(ram=699).admits(figures)
    with pytest.raises(ValueError, match="unknown figure"):
        figures.value("flash_bytes")


def test_a_budget_refuses_a_non_positive_limit_in_one_line():
    import pytest

    from factory.budget.feasibility import Budget
    from factory.errors import FactoryError

    with pytest.raises(FactoryError, match="--budget-params must be positive"):
        Budget(params=0)
    with pytest.raises(FactoryError, match="--budget-latency"):
        Budget(latency=-1.0)
    assert Budget.parse("0.3M", flash="256KB").limits() == {"params": 300_000, "flash": 256_000}


def test_limits_each_reachable_alone_but_not_together_are_refused_naming_the_conflict():
    """digits: the smallest exit-1 network has the fewest params, an exit-2 one the least RAM; no network has both."""
    import time

    import pytest

    from factory.budget.feasibility import Budget, check_feasible, int8_layout
    from factory.errors import FactoryError
    from factory.recipe import load_recipe

    recipe = load_recipe("digits")
    spec = recipe.space.to_spec(10)
    layout = int8_layout(recipe)
    check_feasible(spec, Budget(params=20_000).with_int8(layout))
    check_feasible(spec, Budget(ram=9_000).with_int8(layout))
    check_feasible(spec, Budget(params=50_000, ram=9_000).with_int8(layout))  # an exit-2 network meets both
    started = time.perf_counter()
    with pytest.raises(FactoryError) as info:
        check_feasible(spec, Budget(params=20_000, ram=9_000, macs=10_000_000).with_int8(layout))
    assert time.perf_counter() - started < 1.0
    message = str(info.value)
    assert "\n" not in message and "together" in message and "params and RAM" in message
    assert message.endswith("raise --budget-params or --budget-ram")  # MACs are not part of the conflict

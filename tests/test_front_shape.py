"""The report's words on the front's shape under the budget."""

from __future__ import annotations

from factory.report.front_shape import describe_front


def pick(ident: str, top1: float, params: int) -> dict:
    return {"id": ident, "top1_after": top1, "params": params}


def member(top1: float, params: int) -> dict:
    return {"top1": top1, "params": params}


def test_a_small_best_pick_says_the_larger_networks_were_measured():
    picks = [pick("p1", 0.767, 49_002), pick("p2", 0.70, 20_618)]
    archive = [member(0.76, 49_002), member(0.741, 134_578), member(0.736, 208_458), member(0.50, 900_000)]
    words = describe_front(picks, archive, 300_000)
    assert "16% of the budget" in words
    assert "the best of the 1 evaluated with half the budget or more scores 73.60%" in words
    assert "76.00% for the best under the budget" in words


def test_a_flat_front_names_the_far_smaller_pick():
    picks = [pick("big", 0.752, 290_474), pick("small", 0.745, 35_413), pick("tiny", 0.69, 21_717)]
    words = describe_front(picks, [member(0.75, 290_474)], 300_000)
    assert "97% of the budget" in words and "small is within 0.70 points of it with 35,413 params" in words
    assert "Larger networks" not in words


def test_a_front_that_rises_to_the_budget_says_nothing_more():
    picks = [pick("big", 0.85, 280_000), pick("small", 0.80, 40_000)]
    words = describe_front(picks, [member(0.85, 280_000)], 300_000)
    assert words == "The most accurate pick, big, reaches 85.00% test top-1 with 280,000 params, 93% of the budget."


def test_no_network_near_the_budget_is_said_plainly():
    words = describe_front([pick("p1", 0.9, 30_000)], [member(0.9, 30_000), member(0.8, 60_000)], 300_000)
    assert "evaluated no network using half the budget or more (2 under it)" in words

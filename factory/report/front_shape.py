"""The front's shape under the budget, in words: does accuracy still rise near the budget, or does a far
smaller network do as well?

A build hands over its most accurate pick; when that pick uses a small share of the budget, a user needs to
know why (the larger networks the budget allows were measured and are no better) rather than wonder whether
the budget was used. The words come from the picks' test top-1 after post-processing (what is delivered)
and from the search's archive (validation top-1 of every network it evaluated).
"""

from __future__ import annotations

from typing import Any

FAR_SMALLER = 0.5  # "far smaller": at most half the parameters
SAME_ACCURACY_POINTS = 1.0  # "as accurate": within one point of top-1


def _share(params: int, budget: int | None) -> str:
    return f"{params:,} params" + (f", {100 * params / budget:.0f}% of the budget" if budget else "")


def describe_front(picks: list[dict[str, Any]], archive: list[dict[str, Any]], budget: int | None) -> str:
    """One or two sentences on the front's shape under a parameter `budget` (None: no parameter budget)."""
    if not picks:
        return "no picks"
    best = max(picks, key=lambda p: p["top1_after"])
    smaller = [
        p
        for p in picks
        if p["params"] <= FAR_SMALLER * best["params"]
        and 100 * (best["top1_after"] - p["top1_after"]) <= SAME_ACCURACY_POINTS
    ]
    words = [f"The most accurate pick, {best['id']}, reaches {100 * best['top1_after']:.2f}% test top-1 with "]
    words.append(_share(best["params"], budget) + ".")
    if smaller:
        small = min(smaller, key=lambda p: p["params"])
        gap = 100 * (best["top1_after"] - small["top1_after"])
        share = _share(small["params"], budget)
        words.append(f" The front is flat: {small['id']} is within {gap:.2f} points of it with {share}.")
    feasible = [m for m in archive if budget is None or m["params"] <= budget]
    if budget and feasible and best["params"] < FAR_SMALLER * budget:
        near = [m for m in feasible if m["params"] >= FAR_SMALLER * budget]
        top = max(feasible, key=lambda m: m["top1"])
        if not near:
            words.append(f" The search evaluated no network using half the budget or more ({len(feasible)} under it).")
        else:
            best_near = max(near, key=lambda m: m["top1"])
            words.append(
                f" Larger networks were measured and are not better: the best of the {len(near)} evaluated with half "
                f"the budget or more scores {100 * best_near['top1']:.2f}% validation top-1 "
                f"({_share(best_near['params'], budget)}), against {100 * top['top1']:.2f}% for the best under the "
                "budget; a larger budget buys nothing on this super-network."
            )
    return "".join(words)

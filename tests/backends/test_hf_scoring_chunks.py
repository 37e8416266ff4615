"""How the scorer cuts rows into forward passes (pure: no model)."""

from __future__ import annotations

from harness.backends.hf_scoring import TOKEN_BUDGET, _chunks


def _covers(slices: list[tuple[int, int]], n: int) -> bool:
    return [i for s, e in slices for i in range(s, e)] == list(range(n))


def test_without_a_padding_bound_rows_fill_each_pass() -> None:
    lengths = [300, 120, 110, 100, 90, 80, 70, 60, 50]
    slices = _chunks(lengths, 4, None)
    assert slices == [(0, 4), (4, 8), (8, 9)]


def test_padding_bound_cuts_where_a_long_row_would_pad_the_rest() -> None:
    lengths = [300, 120, 110, 105, 100, 98]
    slices = _chunks(lengths, 32, 0.1)
    assert _covers(slices, len(lengths))
    assert slices[0] == (0, 1)  # 300 alone: padding 120 to 300 would more than double it
    for start, end in slices:
        width, real = lengths[start], sum(lengths[start:end])
        assert width * (end - start) <= 1.1 * real


def test_token_budget_bounds_a_pass() -> None:
    width = TOKEN_BUDGET // 3
    slices = _chunks([width] * 10, 32, 0.1)
    assert _covers(slices, 10)
    assert all((e - s) * width <= TOKEN_BUDGET for s, e in slices)

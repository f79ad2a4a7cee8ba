"""The benchmark connector's peak rate: the most arrivals within any one-second window."""

from bench.connector import peak_per_second


def test_the_peak_is_the_busiest_second() -> None:
    assert peak_per_second([]) == 0
    assert peak_per_second([5.0]) == 1
    assert peak_per_second([0.0, 0.5, 0.99, 1.0, 1.2, 1.5, 1.98, 3.0]) == 5
    assert peak_per_second([i * 0.25 for i in range(40)]) == 4

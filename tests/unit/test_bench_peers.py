"""`just bench peers`: utilization is judged against what the provider's window admits."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "bench"))  # bench_peers imports its sibling bench_outbound
peers = load_script("bench/bench_peers.py", "bench_peers")


def test_a_burst_the_window_admits_is_full_utilization_not_more() -> None:
    assert peers.utilization([5.0] * 30, 30.0) == 1.0


def test_the_window_maximum_over_a_span_is_full_utilization() -> None:
    # 30 at once, then 30 more a second later: all a 30/s sliding window admits
    assert peers.utilization([0.0] * 30 + [1.0] * 30, 30.0) == 1.0
    # one send a second for 10 s uses a thirtieth of the bot's rate
    assert math.isclose(peers.utilization([float(i) for i in range(10)], 30.0), 10 / 300)


def test_nothing_accepted_is_no_utilization() -> None:
    assert math.isnan(peers.utilization([], 30.0))

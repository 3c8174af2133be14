"""The event reader's horizon: which history ids can no longer be joined by a smaller one."""

from qqueue.api.eventhub import Horizon


def test_the_horizon_waits_for_the_transactions_each_read_saw_running_and_takes_the_newest_settled_read():
    horizon = Horizon()
    assert horizon.advance(10, frozenset()) == 10  # nothing running: every id up to 10 is final
    assert horizon.advance(12, frozenset({7})) == 10  # 7 may still commit an id below 12
    assert horizon.advance(15, frozenset({7, 8})) == 10
    # 7 ended, 8 still runs: the read that saw only 7 running is settled, the next one is not yet.
    assert horizon.advance(16, frozenset({8})) == 12
    assert horizon.advance(16, frozenset({9})) == 16
    # Never backwards, even for a read that saw less.
    assert horizon.advance(3, frozenset()) == 16

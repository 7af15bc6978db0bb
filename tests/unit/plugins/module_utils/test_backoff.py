"""The one back-off schedule (_backoff.BackoffIterator) and the two retry paths that use it."""
import itertools

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._backoff import BackoffIterator
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish import publisher
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.transport import retry_delay


def test_delays_double_up_to_the_cap_without_jitter():
    delays = list(itertools.islice(BackoffIterator(0.5, 3.0), 5))
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_full_jitter_draws_below_the_capped_delay(draw):
    backoff = BackoffIterator(0.2, 5.0, jitter="full", random=lambda: draw)
    assert backoff.delay_for(0) == pytest.approx(0.2 * draw)
    assert backoff.delay_for(10) == pytest.approx(5.0 * draw)   # 0.2 * 2**10 capped first


def test_added_jitter_never_passes_the_cap():
    backoff = BackoffIterator(0.5, 4.0, jitter=0.25, random=lambda: 0.999)
    assert backoff.delay_for(0) == pytest.approx(0.5 * 1.24975)
    assert backoff.delay_for(3) == 4.0


def test_transport_retries_follow_the_schedule_unless_the_registry_says_when():
    assert retry_delay(1, jitter=lambda: 0.0) == 0.5
    assert retry_delay(3, jitter=lambda: 1.0) == pytest.approx(2.5)
    assert retry_delay(2, {"Retry-After": "7"}, jitter=lambda: 1.0) == 7.0


def test_merge_rewrites_back_off_with_full_jitter():
    slept = []
    chosen = publisher.Publisher.__new__(publisher.Publisher)
    assert chosen._merge_step(publisher.merging.Backoff(3), slept.append, lambda: 0.5) is None
    assert slept == [pytest.approx(min(publisher.MERGE_BACKOFF_CAP, publisher.MERGE_BACKOFF * 8) * 0.5)]

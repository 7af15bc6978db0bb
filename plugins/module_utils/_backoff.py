# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One back-off schedule for every retry of the collection (as amazon.aws keeps one ``BackoffIterator``).

Pure code: no sleeping here, callers sleep the delays they are given.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random


class BackoffIterator:
    """Delays in seconds (floats) before retry 0, 1, 2, ...: ``delay * backoff ** n``, at most ``max_delay``.

    ``jitter`` spreads writers that failed together: ``"full"`` draws each delay uniformly from ``[0, d)``
    ("full jitter", for contending writers); a number ``j`` adds up to ``j * d`` (``0``: none). The cap applies
    before full jitter and after added jitter, so no delay exceeds ``max_delay``. ``random`` returns floats in
    ``[0, 1)`` (tests pass a fixed one). Iterating yields ``delay_for(0), delay_for(1), ...`` without end.
    """

    def __init__(self, delay, max_delay, backoff=2.0, jitter=0.0, random=random.random):  # pylint: disable=redefined-outer-name
        self.delay = delay
        self.max_delay = max_delay
        self.backoff = backoff
        self.jitter = jitter
        self.random = random

    def delay_for(self, attempt):
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        base = min(self.delay * self.backoff ** attempt, self.max_delay)
        if self.jitter == "full":
            return base * self.random()
        return min(base * (1 + self.jitter * self.random()), self.max_delay)

    def __iter__(self):
        attempt = 0
        while True:
            yield self.delay_for(attempt)
            attempt += 1

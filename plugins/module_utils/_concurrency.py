# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded concurrency for registry work (requests wait on the network, so threads suffice)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor


def parallel_map(function, items, concurrency):
    """``[function(item) for item in items]``, ``concurrency`` at a time, in order; the first exception propagates."""
    items = list(items)
    if concurrency <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(function, items))

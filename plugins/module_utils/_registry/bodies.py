# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Limits on every answer a registry or token service sends: size by what is fetched, a deadline per body.

Every response passes ``transport._WireAdapter`` on its way back; it wraps the body (``response.raw``) in
a :class:`GuardedBody` before anything reads it (the session, a redirect, the 401 resend, the caller):

- **size**: a successful (2xx) answer larger than the limit of its kind (:data:`LIMITS`; a blob being
  copied: its descriptor's size) is :class:`BodyLimitError` ``SIZE_INVALID`` as soon as the
  ``Content-Length`` or the bytes read say so, and the connection is closed, never drained; any other
  answer (an error, a redirect, a 401) is read to :data:`ERROR_BODY_LIMIT` bytes at most and cut there.
- **time**: a body must arrive whole within a deadline (the task's ``timeout``; a blob copy gets
  ``timeout + size / MIN_BLOB_RATE``), counted from its headers. ``requests``' read timeout applies to
  each read, so a body sent one byte at a time would otherwise never end: one watchdog thread closes the
  connection at the deadline and the read ends with :class:`BodyDeadlineError` ``TIMEOUT``.

Also :func:`check_redirect` (what a redirect may lead to) and :func:`safe_url` (a URL as errors show it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import heapq
import itertools
import socket
import threading
import time

from urllib.parse import urlsplit

from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError

MIB = 1024 * 1024
# Bytes a successful answer of each request kind may have (transport.Request.kind).
LIMITS = {
    "manifest": 4 * MIB,     # distribution's and containerd's manifest limit (distribution-spec "Pushing Manifests")
    "blob": 8 * MIB,         # image configs read whole (containerd's config limit); copies use the descriptor size
    "token": 1 * MIB,        # a token answer is a few KiB (distribution "Token Authentication Specification")
    "ping": 1 * MIB,
    "tags": 4 * MIB,         # one page of n=1000 names of up to 128 (tags) or 255 (repositories) characters
    "catalog": 4 * MIB,
    "referrers": 4 * MIB,    # the Referrers API answers an image index: the manifest limit
    "upload": 1 * MIB,
}
DEFAULT_LIMIT = 1 * MIB
ERROR_BODY_LIMIT = 64 * 1024      # error, redirect and 401 bodies: only their first words are ever shown
MIN_BLOB_RATE = 64 * 1024         # bytes per second a blob copy must average (its deadline)
MAX_REDIRECTS = 10                # Go's net/http and docker stop after 10 redirects as well


class BodyLimitError(RegistryError):
    """An answer larger than the limit for what was fetched (``SIZE_INVALID``)."""


class BodyDeadlineError(RegistryError):
    """An answer whose body did not arrive whole within its deadline (``TIMEOUT``)."""


class RedirectError(RegistryError):
    """A redirect the collection does not follow (``REDIRECT_REFUSED``)."""


def safe_url(url):
    """``url`` without its query and fragment (signed CDN URLs carry credentials there), for error messages."""
    return str(url).split("?", 1)[0].split("#", 1)[0][:300]


def size_text(size):
    return "%d MiB" % (size // MIB) if size >= MIB and size % MIB == 0 else "%d bytes" % size


def check_redirect(previous_url, next_url, method):
    """Raise RedirectError unless a redirect from ``previous_url`` to ``next_url`` may be followed.

    Followed: ``http``/``https`` targets, on any host (blob storage and CDNs; the session sends another host
    only what it asked for). Refused: any other scheme (``file:``, ``ftp:``, ``data:`` ...) and plain HTTP
    after HTTPS (what was protected by TLS stays so).
    """
    old, new = urlsplit(previous_url).scheme.lower(), urlsplit(next_url).scheme.lower()
    if new not in ("http", "https"):
        raise RedirectError("%s %s: the registry redirected to a %r URL; only http and https are followed"
                            % (method, safe_url(previous_url), new or "relative"), code="REDIRECT_REFUSED")
    if old == "https" and new == "http":
        raise RedirectError("%s %s: the registry redirected from HTTPS to plain HTTP (%s); refused, nothing "
                            "protected by TLS is sent in clear" % (method, safe_url(previous_url), safe_url(next_url)),
                            code="REDIRECT_REFUSED")


class _Watchdog:
    """One daemon thread that closes the connections of bodies past their deadline (heap of deadlines)."""

    def __init__(self):
        self._heap = []
        self._count = itertools.count()
        self._cond = threading.Condition()
        self._thread = None
        self._live = 0

    def finished(self):
        with self._cond:
            self._live -= 1

    def add(self, ticket, deadline):
        """Watch ``ticket`` (``[GuardedBody]``; its holder sets ``ticket[0] = None`` when the body is over)."""
        with self._cond:
            self._live += 1
            if len(self._heap) > 64 and len(self._heap) > 4 * self._live:   # drop finished bodies' entries
                self._heap = [entry for entry in self._heap if entry[2][0] is not None]
                heapq.heapify(self._heap)
            earliest = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, next(self._count), ticket))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="archfleet-body-deadlines", daemon=True)
                self._thread.start()
            if earliest:        # the thread sleeps until the earliest deadline: wake it only for an earlier one
                self._cond.notify()

    def _run(self):
        with self._cond:
            while True:
                while self._heap and self._heap[0][2][0] is None:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                body = heapq.heappop(self._heap)[2][0]
                if body is not None:
                    body.expire()


WATCHDOG = _Watchdog()


def _socket_of(raw):
    connection = getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock


class GuardedBody:
    """``response.raw`` (urllib3's HTTPResponse) read under a size limit and a deadline; everything else passes.

    ``limit`` bytes for a 2xx answer (BodyLimitError past it), :data:`ERROR_BODY_LIMIT` for any other
    (cut there); ``deadline`` seconds from now for the whole body (BodyDeadlineError), or None.
    """

    def __init__(self, raw, status, method, url, kind, limit, deadline):
        self._raw = raw
        self._ok = 200 <= (status or 0) < 300
        self._what = "%s %s" % (method, safe_url(url))
        self._kind = kind
        self._limit = limit if self._ok else ERROR_BODY_LIMIT
        self._seconds = deadline
        self._deadline = None if deadline is None else time.monotonic() + deadline
        self._read = 0
        self._ticket = None
        self.done = False
        self._passthrough = method == "HEAD"     # no body: nothing to limit
        self._urllib3 = hasattr(raw, "stream")   # else a file object (tests' scripted answers)
        self.expired = False

    def __getattr__(self, name):
        return getattr(self._raw, name)

    # ------------------------------------------------------------------ what requests calls
    def stream(self, amt=2 ** 16, decode_content=None):
        while True:
            data = self.read(amt, decode_content=decode_content)
            if not data:
                return
            yield data

    def read(self, amt=None, decode_content=None, **kwargs):
        if self._passthrough:
            return self._raw_read(amt, decode_content, kwargs)
        if self.done:
            return b""
        self._check_length()
        if self._deadline is not None and self._ticket is None:
            self._ticket = [self]
            WATCHDOG.add(self._ticket, self._deadline)
        want = self._limit - self._read + 1
        amt = want if amt is None else min(amt, want)
        try:
            data = self._raw_read(amt, decode_content, kwargs)
        except Exception:
            if self.expired:
                self._finish()
                raise self._deadline_error() from None
            raise
        if self.expired:
            self._finish()
            raise self._deadline_error()
        if not data:
            self._finish(close=False)
            return data
        self._read += len(data)
        if self._read > self._limit:
            self._finish()
            if self._ok:
                raise self._size_error()
            return data[:len(data) - (self._read - self._limit)]
        return data

    def _raw_read(self, amt, decode_content, kwargs):
        if self._urllib3:
            return self._raw.read(amt, decode_content=decode_content, **kwargs)
        return self._raw.read() if amt is None else self._raw.read(amt)

    def close(self):
        self._finish(close=False)
        return self._raw.close()

    def release_conn(self):
        self._finish(close=False)
        release = getattr(self._raw, "release_conn", None)
        return release() if release is not None else None

    # ------------------------------------------------------------------ internals
    def _check_length(self):
        headers = getattr(self._raw, "headers", None) if self._ok and not self._read else None
        length = headers.get("Content-Length") if headers is not None else None
        if length and length.strip().isdigit() and int(length) > self._limit:
            self._finish()
            raise self._size_error()

    def _finish(self, close=True):
        """The body is over (read, refused or cut): stop the watchdog; close the connection unless read to its end."""
        self.done = True
        if self._ticket is not None and self._ticket[0] is not None:
            self._ticket[0] = None
            WATCHDOG.finished()
        if close:
            try:
                self._raw.close()
            except Exception:   # closing a connection already broken
                pass

    def expire(self):
        """Called by the watchdog at the deadline: end the connection so the blocked read returns."""
        self.expired = True
        sock = _socket_of(self._raw)
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, ValueError, TypeError):
                pass

    def _size_error(self):
        what = "a blob of that size" if self._kind == "blob" else "a %s answer" % self._kind
        return BodyLimitError("%s: the answer is larger than %s, the limit for %s; refused without reading the rest"
                              % (self._what, size_text(self._limit), what), code="SIZE_INVALID")

    def _deadline_error(self):
        return BodyDeadlineError("%s: the body did not arrive within %g s (%d bytes came); refused"
                                 % (self._what, self._seconds, self._read), code="TIMEOUT")


def guard(response, method, kind, limit, timeout):
    """Wrap ``response.raw`` (a requests Response fresh from the adapter) in a :class:`GuardedBody`.

    ``limit``: the request's own limit (a blob copy's descriptor size) or None for its kind's; ``timeout``:
    the task's (seconds, float or requests' timeout pair), the deadline of every body but a blob copy's.
    """
    if response.raw is None or isinstance(response.raw, GuardedBody):
        return response
    seconds = timeout[1] if isinstance(timeout, tuple) else getattr(timeout, "read_timeout", timeout)
    if limit is None:
        limit = LIMITS.get(kind, DEFAULT_LIMIT)
    elif seconds is not None:
        seconds = seconds + limit / float(MIN_BLOB_RATE)
    if not isinstance(seconds, (int, float)):
        seconds = None
    response.raw = GuardedBody(response.raw, response.status_code, method, response.url or "", kind, limit, seconds)
    return response

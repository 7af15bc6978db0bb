# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry errors and their wording: one sentence naming what failed, the status and the error code.

Error bodies follow the OCI distribution-spec, section "Error Codes" (``{"errors": [{"code", "message",
"detail"}]}``); registries that answer plain text or HTML (proxies, Docker Hub's rate limiter) are
worded from the status code. Nothing here sends a request.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from requests.exceptions import RequestException
except ImportError:  # pragma: no cover - the modules report the missing library first
    RequestException = OSError

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.jsondoc import loads_strict

STATUS_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND", 405: "UNSUPPORTED", 429: "TOOMANYREQUESTS"}
RATE_LIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "docker-ratelimit-source",
                      "x-ratelimit-limit", "x-ratelimit-remaining", "retry-after")
ERROR_BODY_LIMIT = 4096


class RegistryError(Exception):
    """A registry operation failed. ``str()`` is one sentence naming the reference and the error code.

    ``code`` is the distribution-spec error code (``MANIFEST_UNKNOWN``, ``DENIED``, ...) or one of this
    collection's (``UNREACHABLE``, ``TLS``, ``DIGEST_MISMATCH``, ``CREDENTIALS``); ``status`` the HTTP
    status when there was an answer; ``detail`` the sentence without the request, for callers that name
    the request better.
    """

    def __init__(self, message, code=None, status=None, detail=None):
        super(RegistryError, self).__init__(message)
        self.code = code
        self.status = status
        self.detail = detail or message


class BrokenBodyError(RegistryError):
    """The connection broke while a body streamed in, on every attempt; ``detail`` says how often."""


def parse_error_body(body, content_type=""):
    """``(code, message)`` of a registry error body (JSON ``errors`` list or plain text); Nones when empty.

    ``code`` is the first error's code; when the body carries several errors, ``message`` ends
    with the others (``also CODE (message)``), so no code is lost.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        data = loads_strict(text, "the error body")   # ValueError for anything not strict JSON, however deep
    except ValueError:
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            message = (first.get("message") or "").strip() or None
            detail = _detail_text(first.get("detail"))
            if detail and detail.lower() not in (message or "").lower():
                message = "%s: %s" % (message, detail) if message else detail
            others = ["%s%s" % (e.get("code") or "UNKNOWN", " (%s)" % e["message"].strip()
                                if isinstance(e.get("message"), str) and e["message"].strip() else "")
                      for e in errors[1:] if isinstance(e, dict)]
            if others:
                message = "%s; also %s" % (message or "", ", ".join(others))
                message = message.lstrip("; ")
            return first.get("code") or None, message
        if data.get("details") or data.get("message"):
            return None, (data.get("details") or data.get("message"))
    text = " ".join(text.split())
    if "<html" in text.lower():
        text = ""
    return None, (text[:200] or None)


def _detail_text(detail):
    """A string ``detail`` of an error as a short sentence part (GitLab puts the cause there: "unknown media
    type ..."); distribution's structured details (``{"Tag": ...}``) repeat the request and are left out."""
    if not isinstance(detail, str):
        return None
    return " ".join(detail.split())[:200] or None


def _body_start(response):
    try:
        return response.content[:ERROR_BODY_LIMIT]
    except (RequestException, RuntimeError):  # a body we cannot read adds nothing
        return b""


def error_code(response):
    """The distribution-spec error code of an answer's body, or None."""
    return parse_error_body(_body_start(response))[0]


def response_error(response, what, registry=None, auth=None, retries=0):
    """A RegistryError for an unexpected answer: ``<what> failed: the registry answered <status> <CODE> (...)``.

    With ``registry`` set, a 401 says whose credentials were refused, or that none were found: ``auth``
    (the answer's ``auth.RegistryAuth``, or None) tells whether credentials were actually sent, so an
    error never blames credentials that were not. A 429 says how often it was retried and which
    rate-limit headers came with it.
    """
    code, message = parse_error_body(_body_start(response), response.headers.get("Content-Type", ""))
    code = code or STATUS_CODES.get(response.status_code) or "HTTP_%d" % response.status_code
    text = "%s failed: the registry answered %d %s" % (what, response.status_code, code)
    if message and message.lower() != code.lower().replace("_", " "):
        text += " (%s)" % message
    if response.status_code == 401 and registry is not None:
        credentials = getattr(auth, "credentials_sent", None)
        if credentials is not None:
            text += "; the credentials of %r (from %s) were not accepted" % (
                credentials.username or "<identity token>", credentials.source)
        elif getattr(auth, "token_granted", False):
            text += ("; the token service granted an anonymous token without this access, and no credentials "
                     "were found for %s (set username/password, registry_credentials or docker_config)" % registry)
        else:
            text += "; no credentials were found for %s (set username/password, registry_credentials or docker_config)" % registry
    if code == "TOOMANYREQUESTS" or response.status_code == 429:
        text += "; retried %d times, rate-limit headers: %s" % (retries, rate_limit_summary(response.headers))
    return RegistryError(text, code=code, status=response.status_code)


def is_pull_denied(response):
    """Whether a read was refused for this repository rather than for the task's credentials.

    403 (the registry knows who asks and refuses this repository), or 401 after a Bearer token was granted
    (Docker Hub answers a missing or private repository with 401 ``insufficient_scope`` after granting an
    anonymous pull token: distribution/distribution#1291). A 401 to refused credentials is not.
    """
    if response.status_code == 403:
        return True
    auth = getattr(response, "registry_auth", None)
    if response.status_code != 401 or auth is None:
        return False
    return auth.token_granted or (auth.challenge is not None and auth.challenge.error == "insufficient_scope")


def pull_denied_error(response, what, name, registry):
    """``DENIED``: ``<what> failed: <name> does not exist or no pull access (...)``, as docker says it."""
    code, message = parse_error_body(_body_start(response), response.headers.get("Content-Type", ""))
    code = code or STATUS_CODES.get(response.status_code) or "HTTP_%d" % response.status_code
    auth = getattr(response, "registry_auth", None)
    error = getattr(getattr(auth, "challenge", None), "error", None)
    detail = "%d %s%s%s" % (response.status_code, code, " (%s)" % message if message else "",
                            ", %s" % error if error else "")
    text = "%s failed: %s does not exist or no pull access (the registry answered %s)" % (what, name, detail)
    if auth is not None and auth.credentials_sent is None:
        text += ("; no credentials were found for %s (set username/password, registry_credentials or docker_config)"
                 % registry)
    return RegistryError(text, code="DENIED", status=response.status_code)


def transport_error(method, url, attempts, exc, tls=False):
    """A RegistryError for a request that never got an answer (connection refused, reset, timeout, TLS)."""
    where = url.split("?", 1)[0]
    if tls:
        detail = "failed: TLS error (%s)" % short_ssl_reason(exc)
        code = "TLS"
    else:
        detail = "failed after %d attempt(s): %s" % (attempts, short_connection_reason(exc))
        code = "UNREACHABLE"
    return RegistryError("%s %s %s" % (method, where, detail), code=code, detail=detail)


def describe_path(ref, path):
    """What an API path of ``ref``'s repository is, in reference terms (``name:tag``, ``name@digest``)."""
    if path.startswith("manifests/"):
        reference = path[len("manifests/"):]
        return ref.name + ("@" if ":" in reference else ":") + reference
    if path.startswith("blobs/uploads"):
        return "blob upload to " + ref.name
    if path.startswith("blobs/"):
        return "blob %s of %s" % (path[len("blobs/"):], ref.name)
    return "%s/%s" % (ref.name, path)


def is_cert_error(exc):
    """Whether a TLS failure is about the server's certificate (unknown CA, expired, name mismatch)."""
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "hostname" in text.lower()


def short_ssl_reason(exc):
    text = str(exc)
    for marker in ("certificate verify failed: ", "CERTIFICATE_VERIFY_FAILED"):
        if marker in text:
            tail = text.split(marker, 1)[1]
            return ("certificate verify failed: " + tail.split("(_ssl")[0].strip(" )'\"")).strip(": ")
    return text[:160]


def short_connection_reason(exc):
    if exc is None:
        return "no answer"
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "Temporary failure in name resolution", "Connection reset", "Connection aborted"):
        if marker.lower() in text.lower():
            return marker.lower()
    if "IncompleteRead" in text or "Connection broken" in text:
        return "the body was cut short"
    return text[:200]


def rate_limit_summary(headers):
    seen = ["%s=%s" % (name, headers.get(name)) for name in RATE_LIMIT_HEADERS if headers.get(name) is not None]
    return ", ".join(seen) or "none"

# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""JMESPath queries and policy evaluation over docker_manifest_info facts.

Pure code (no I/O, no Ansible): the ``manifest_query`` and ``manifest_audit`` filters are thin
wrappers around it, so the audit playbook, other playbooks and the unit tests all evaluate
policies the same way.

A policy is ``{name, expression, severity, description}``; its JMESPath expression is evaluated
over ONE image's facts and the image passes when the result is truthy (JMESPath truthiness:
``false``, ``null``, ``""``, ``[]`` and ``{}`` fail). JMESPath has no date arithmetic, so
``audit`` first adds ``age_days`` to each image and each of its manifests, computed from the
config ``created`` dates against a ``now`` given by the caller (a fixed ``now`` gives a
reproducible audit).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import re
import traceback

try:
    import jmespath
    from jmespath import exceptions as jmespath_exceptions
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by require_jmespath
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import (
    PlatformError,
    format_key,
    platform_key,
)

SEVERITIES = ("error", "warning", "info")
# The supply-chain columns of the reports (docker_manifest_info's supply_chain, with referrers=true).
SUPPLY_CHAIN_KEYS = ("signed", "sbom", "provenance")
POLICY_KEYS = frozenset(("name", "expression", "severity", "description"))

# RFC 3339 as image configs write it: Go writes up to nine fractional digits, which
# datetime.fromisoformat (Python < 3.11) does not accept.
_TIMESTAMP_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})$"
)


class PolicyError(ValueError):
    """A query or policy cannot be evaluated; the message names the expression and says why."""


def require_jmespath(what):
    """Raise PolicyError when the jmespath library is missing, naming ``what`` needs it."""
    if not HAS_JMESPATH:
        raise PolicyError("%s needs the Python library 'jmespath' on the controller (pip install jmespath)" % what)


def _parse_error_reason(exc):
    """The parser's reason and 0-based position for a malformed expression, as one phrase."""
    if isinstance(exc, jmespath_exceptions.LexerError):
        return "%s at position %d" % (exc.message.rstrip("."), exc.lexer_position)
    if isinstance(exc, jmespath_exceptions.IncompleteExpressionError):
        return "the expression is incomplete at position %d (its end)" % exc.lex_position
    if isinstance(exc, jmespath_exceptions.ParseError):
        return "%s at position %d (token %r)" % (exc.msg.rstrip("."), exc.lex_position, exc.token_value)
    if isinstance(exc, jmespath_exceptions.EmptyExpressionError):
        return "the expression is empty"
    return str(exc)


def compile_expression(expression):
    """A compiled JMESPath expression; PolicyError with the parser's position and reason otherwise."""
    require_jmespath("JMESPath evaluation")
    if not isinstance(expression, str):
        raise PolicyError("the JMESPath expression must be a string, got %s %r"
                          % (type(expression).__name__, expression))
    try:
        return jmespath.compile(expression)
    except jmespath_exceptions.JMESPathError as exc:
        raise PolicyError("invalid JMESPath expression %r: %s" % (expression, _parse_error_reason(exc)))


def _text(value):
    """``value`` (a str or a str subclass) as an exact ``str``.

    ``str(value)`` is not enough: ansible-core 2.17 and 2.18's AnsibleUnsafeText (every registered
    result and templated string) defines ``__str__`` to return itself. ``str.__str__`` always
    returns an exact ``str``, copying a subclass's characters.
    """
    return str.__str__(value)


def plain(data, path="input"):
    """``data`` as plain JSON types (dict, list, str, int, float, bool, None).

    jmespath type-checks function arguments by exact type name, so the str/dict subclasses
    Ansible wraps values in (AnsibleUnsafeText, AnsibleUnicode, NativeJinjaUnsafeText on
    ansible-core 2.17/2.18; tagged and lazy types on 2.19) would make ``starts_with``, ``join``,
    ``sort_by`` or ``length`` of a string fail; JSON is also the data model JMESPath is defined over.
    """
    if data is None or isinstance(data, bool):
        return None if data is None else bool(data)
    if isinstance(data, int):
        return int(data)
    if isinstance(data, float):
        return float(data)
    if isinstance(data, str):
        return _text(data)
    if isinstance(data, dict):
        return dict((_text(key) if isinstance(key, str) else str(key), plain(value, "%s.%s" % (path, key)))
                    for key, value in data.items())
    if isinstance(data, (list, tuple)):
        return [plain(value, "%s[%d]" % (path, index)) for index, value in enumerate(data)]
    raise PolicyError("%s is a %s, which is not JSON data" % (path, type(data).__name__))


def search(expression, data):
    """Evaluate ``expression`` over ``data``; PolicyError for a malformed or failing expression.

    Evaluation errors (an unknown function, a wrong argument type such as ``length(null)``) are
    only found at run time, so they are reported the same way as parse errors.
    """
    compiled = compile_expression(expression)
    try:
        return compiled.search(plain(data))
    except jmespath_exceptions.JMESPathError as exc:
        raise PolicyError("JMESPath expression %r failed: %s" % (expression, exc))


def parse_timestamp(text):
    """An aware datetime from an RFC 3339 timestamp (``2024-01-01T00:00:00.123456789Z``), or None."""
    if isinstance(text, datetime.datetime):
        return text if text.tzinfo else text.replace(tzinfo=datetime.timezone.utc)
    match = _TIMESTAMP_RE.match(text) if isinstance(text, str) else None
    if not match:
        return None
    zone = match.group("zone")
    zone = "+00:00" if zone in ("Z", "z") else zone
    fraction = (match.group("fraction") or "0")[:6].ljust(6, "0")
    normalised = "%sT%s.%s%s" % (match.group("date"), match.group("time"), fraction, zone.replace(":", ""))
    try:
        return datetime.datetime.strptime(normalised, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None


def age_days(created, now):
    """Whole days from ``created`` (RFC 3339 text) to ``now`` (aware datetime); None when unknown."""
    created_at = parse_timestamp(created)
    if created_at is None:
        return None
    return int((now - created_at).total_seconds() // 86400)


def with_ages(image, now):
    """A copy of one image's facts with ``age_days`` on each manifest and on the image.

    A manifest's age comes from its config ``created`` date (facts gathered with ``config: true``);
    the image's age is that of its oldest platform. Both are None when no date is known.
    """
    image = copy.deepcopy(image)
    ages = []
    for manifest in image.get("manifests") or []:
        manifest["age_days"] = age_days((manifest.get("config") or {}).get("created"), now)
        if manifest["age_days"] is not None:
            ages.append(manifest["age_days"])
    image["age_days"] = max(ages) if ages else None
    return image


def validate_policies(policies):
    """Policies with defaults filled in and expressions compiled: a list of (policy, compiled).

    Everything wrong with a policy is found here, before any image is evaluated or any report is
    written: a missing name or expression, a duplicate name, an unknown severity or key, and a
    malformed expression (named together with the policy).
    """
    if not isinstance(policies, list):
        raise PolicyError("policies must be a list of {name, expression, severity, description}, got %s"
                          % type(policies).__name__)
    seen = set()
    checked = []
    for index, policy in enumerate(policies):
        if not isinstance(policy, dict):
            raise PolicyError("policies[%d] must be a dict with name, expression and severity, got %r" % (index, policy))
        name = policy.get("name")
        if not isinstance(name, str) or not name.strip():
            raise PolicyError("policies[%d] has no name" % index)
        label = "policy %r (policies[%d])" % (name, index)
        unknown = sorted(set(policy) - POLICY_KEYS)
        if unknown:
            raise PolicyError("%s has unknown keys %s (allowed: %s)"
                              % (label, ", ".join(unknown), ", ".join(sorted(POLICY_KEYS))))
        if name in seen:
            raise PolicyError("%s: the name is used by an earlier policy; names must be unique" % label)
        seen.add(name)
        severity = policy.get("severity", "error")
        if severity not in SEVERITIES:
            raise PolicyError("%s has severity %r; expected one of %s" % (label, severity, ", ".join(SEVERITIES)))
        if not policy.get("expression"):
            raise PolicyError("%s has no expression" % label)
        try:
            compiled = compile_expression(policy["expression"])
        except PolicyError as exc:
            raise PolicyError("%s: %s" % (label, exc))
        checked.append(({"name": str(name), "expression": str(policy["expression"]), "severity": severity,
                         "description": str(policy.get("description") or "")}, compiled))
    return checked


def _platform_columns(images, require_platforms):
    """Matrix columns: required platforms first, then every other platform in order of appearance.

    Columns are normalised platform keys, so ``linux/arm64`` and ``linux/arm64/v8`` share one.
    """
    columns = []
    for text in require_platforms:
        key = platform_key(text)
        if key not in columns:
            columns.append(key)
    for image in images:
        for manifest in image.get("manifests") or []:
            platform = manifest.get("platform")
            if not platform or not platform.get("architecture") or manifest.get("kind") == "artifact":
                continue
            key = platform_key(platform)
            if key not in columns:
                columns.append(key)
    return columns


def _platform_cells(image, columns, required):
    """One matrix row: per column, the image's manifest for that platform (digest, size, age) or ``present: false``."""
    by_key = {}
    for manifest in image.get("manifests") or []:
        if (manifest.get("platform") and manifest["platform"].get("architecture")
                and manifest.get("kind") != "artifact"):
            by_key.setdefault(platform_key(manifest["platform"]), manifest)
    cells = []
    for key in columns:
        manifest = by_key.get(key)
        if manifest is None:
            cells.append({"present": False, "required": key in required})
            continue
        config = manifest.get("config") or {}
        cells.append({
            "present": True,
            "required": key in required,
            "platform": manifest.get("platform_string"),
            "digest": manifest.get("digest"),
            "short_digest": (manifest.get("digest") or "").split(":")[-1][:12],
            "size": config.get("size"),
            "created": config.get("created"),
            "age_days": manifest.get("age_days"),
        })
    return cells


def supply_chain_cells(image):
    """Per SUPPLY_CHAIN_KEYS: ``yes`` (the image or index itself has it, or every platform does), ``partial``
    (some platforms), ``no``; None when the facts were gathered without ``referrers``."""
    summary = image.get("supply_chain")
    if not isinstance(summary, dict):
        return None
    platforms = [m.get("supply_chain") or {} for m in image.get("manifests") or []
                 if isinstance(m, dict) and m.get("kind") == "image"]
    cells = {}
    for key in SUPPLY_CHAIN_KEYS:
        have = [bool(platform.get(key)) for platform in platforms]
        if summary.get(key) or (have and all(have)):
            cells[key] = "yes"
        elif any(have):
            cells[key] = "partial"
        else:
            cells[key] = "no"
    return cells


# How a signature that does not count is described in the reports (docker_manifest_info signatures[].reason).
SIGNATURE_REASONS = {
    "bad-signature": "malformed", "other-key": "by another key", "bad-payload": "with a payload that is not cosign's",
    "other-digest": "for another digest", "other-repository": "for another repository",
    "unsupported": "of a kind not verified", "unreadable": "unreadable",
    "untrusted-certificate": "with an untrusted certificate", "other-identity": "for another identity",
    "other-issuer": "from another OIDC issuer", "expired-certificate": "with an expired certificate",
}


def _count(number, word):
    return "%d %s%s" % (number, word, "" if number == 1 else "s")


def _described(fact):
    return SIGNATURE_REASONS.get(fact.get("reason"), fact.get("reason") or "not verified")


def _verdict(signatures):
    """``1 signature, by another key``; ``3 signatures: 2 by another key, 1 for another digest``; ``verified``."""
    if not signatures:
        return "no signature"
    failed = [_described(fact) for fact in signatures if not fact.get("verified")]
    total = _count(len(signatures), "signature")
    if not failed:
        return "%s, verified" % total
    reasons = []
    for reason in failed:
        if reason not in reasons:
            reasons.append(reason)
    if len(reasons) == 1 and len(failed) == len(signatures):
        return "%s, %s" % (total, reasons[0])
    verified = len(signatures) - len(failed)
    parts = (["%d verified" % verified] if verified else []) + ["%d %s" % (failed.count(reason), reason)
                                                                for reason in reasons]
    return "%s: %s" % (total, ", ".join(parts))


def signature_summary(image):
    """``{signers, verdict, platforms}`` for the reports when signatures were verified (keys or a certificate
    identity); None otherwise. ``signers`` are those of the image or index and of its platforms (key ids, or
    ``identity (issuer)``); ``verdict`` says in words why the image's own signatures do (not) count, and
    ``platforms`` maps each platform entry to its verdict."""
    if "signatures" not in image:
        return None
    signers = list((image.get("supply_chain") or {}).get("signers") or [])
    platforms = {}
    for manifest in image.get("manifests") or []:
        if not isinstance(manifest, dict) or manifest.get("kind") != "image" or "signatures" not in manifest:
            continue
        for signer in (manifest.get("supply_chain") or {}).get("signers") or []:
            if signer not in signers:
                signers.append(signer)
        platforms[manifest.get("platform_string") or manifest.get("digest")] = _verdict(manifest["signatures"])
    return {"signers": signers, "verdict": _verdict(image.get("signatures")), "platforms": platforms}


def is_truthy(value):
    """JMESPath truthiness: false, null and empty strings, lists and objects are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


def _outcome(image, passed):
    """``fail``; ``pass``; or ``n/a`` for a policy an image that does not exist (or was not read) passes.

    The built-in policies pass a missing image (``!exists || ...``) so that it fails once, on
    ``image-exists``; the reports say "n/a" there rather than claim the image passed.
    """
    if not passed:
        return "fail"
    return "pass" if image.get("exists") is True else "n/a"


def _worst(severities):
    """The most severe of ``severities`` (failed results), or ``pass`` when there are none."""
    for severity in SEVERITIES:
        if severity in severities:
            return severity
    return "pass"


def audit(images, policies, now, require_platforms=None):
    """Evaluate every policy for every image: the audit document the reports are written from.

    ``images`` is docker_manifest_info's ``images`` list; ``now`` an RFC 3339 timestamp or an aware
    datetime. Returns ``{now, require_platforms, policies, platform_columns, images, summary}``:

    - each image is its facts plus ``age_days`` (see with_ages), ``results`` (per policy: policy,
      severity, passed, outcome - ``pass``, ``fail`` or ``n/a`` - and value), ``status`` (``pass`` or the worst failed severity) and
      ``platform_cells`` (one per ``platform_columns`` entry: the manifest's digest, size, age);
    - each policy carries ``failed``, the number of images that failed it;
    - ``summary`` counts failures per severity and lists every failed image/policy pair.

    Raises PolicyError before evaluating anything when a policy or ``now`` is invalid, and names
    the policy, expression and image when an expression fails on an image.
    """
    now_at = parse_timestamp(now)
    if now_at is None:
        raise PolicyError("now must be an RFC 3339 timestamp such as 2024-06-01T00:00:00Z, got %r" % (now,))
    require_platforms = plain(list(require_platforms or []), "require_platforms")
    try:
        required = set(platform_key(text) for text in require_platforms)
    except PlatformError as exc:
        raise PolicyError("require_platforms: %s" % exc)
    checked = validate_policies(plain(policies, "policies"))
    if not isinstance(images, list):
        raise PolicyError("images must be the list docker_manifest_info returns as 'images', got %s"
                          % type(images).__name__)
    images = [with_ages(image, now_at) for image in plain(images, "images")]
    columns = _platform_columns(images, require_platforms)

    failures = []
    for image in images:
        image["results"] = []
        for policy, compiled in checked:
            try:
                value = compiled.search(image)
            except jmespath_exceptions.JMESPathError as exc:
                raise PolicyError("policy %r: JMESPath expression %r failed on %s: %s"
                                  % (policy["name"], policy["expression"], image.get("canonical"), exc))
            passed = is_truthy(value)
            image["results"].append({"policy": policy["name"], "severity": policy["severity"], "passed": passed,
                                     "outcome": _outcome(image, passed), "value": value})
            if not passed:
                failures.append({"image": image.get("canonical") or image.get("reference"),
                                 "policy": policy["name"], "severity": policy["severity"]})
        image["status"] = _worst(set(result["severity"] for result in image["results"] if not result["passed"]))
        image["platform_cells"] = _platform_cells(image, columns, required)
        image["supply_chain_cells"] = supply_chain_cells(image)
        image["signature_summary"] = signature_summary(image)

    definitions = [entry[0] for entry in checked]
    return {
        "now": now_at.isoformat(),
        "require_platforms": require_platforms,
        "policies": [dict(policy, failed=sum(1 for failure in failures if failure["policy"] == policy["name"]))
                     for policy in definitions],
        "platform_columns": [format_key(key) for key in columns],
        # True when the facts carry referrers (docker_manifest_info referrers=true): the reports show the
        # signed / SBOM / provenance columns (image["supply_chain_cells"]).
        "supply_chain": any(image.get("supply_chain_cells") for image in images),
        "images": images,
        "summary": {
            "images": len(images),
            "policies": len(definitions),
            "evaluations": len(images) * len(definitions),
            "failed": dict((severity, sum(1 for failure in failures if failure["severity"] == severity))
                           for severity in SEVERITIES),
            "status": _worst(set(failure["severity"] for failure in failures)),
            "failures": failures,
        },
    }

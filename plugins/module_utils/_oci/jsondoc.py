# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Strict JSON for documents a registry sends: manifests, indexes, image configs, token answers, tag pages.

RFC 8259 leaves duplicate object keys and deep nesting to the parser; two parsers that disagree on them
see two different documents under one digest (a manifest that lists one platform to this collection and
another to containerd). OCI image-spec v1.1 ("Canonicalization" in considerations.md) asks for strict
JSON; Python's ``json`` also accepts ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON. So
:func:`loads_strict` refuses, with ``ValueError`` only (never ``RecursionError``): bytes that are not
UTF-8, text that is not JSON, duplicate keys in any object, ``NaN``/``Infinity``, and nesting deeper than
:data:`MAX_DEPTH`. The pure layer: imports only the standard library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

# Arrays and objects inside one another. An index of indexes of images is 4 deep; containerd and
# distribution refuse nothing by depth, Go's encoding/json stops at 10,000. 64 leaves room for any
# document an image tool writes and stays far below the C scanner's recursion limit (about 1,000).
MAX_DEPTH = 64


def _no_constant(name):
    raise ValueError("%s is not JSON (RFC 8259, section 6)" % name)


def _unique_pairs(pairs):
    document = {}
    for key, value in pairs:
        if key in document:
            raise ValueError("duplicate key %r in a JSON object" % key[:100])
        document[key] = value
    return document


def nesting_depth(value, limit=MAX_DEPTH):
    """How deeply arrays and objects nest in the parsed JSON ``value`` (a scalar is 0); stops past ``limit``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads_strict(data, what="the document", max_depth=MAX_DEPTH):
    """The JSON value of ``data`` (bytes or str). ValueError naming ``what`` when it is not strict JSON.

    Refused: invalid UTF-8, invalid JSON, duplicate object keys, ``NaN``/``Infinity``/``-Infinity``, and
    arrays or objects nested deeper than ``max_depth``.
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("%s is not UTF-8 (byte %d)" % (what, exc.start)) from None
    else:
        text = data
    try:
        value = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
    except RecursionError:   # the C scanner's own limit (about 1,000 levels)
        value = None
        deep = True
    except ValueError as exc:
        raise ValueError("%s is not valid JSON: %s" % (what, str(exc)[:200])) from None
    else:
        deep = nesting_depth(value, max_depth) > max_depth
    if deep:
        raise ValueError("%s nests arrays or objects deeper than %d levels" % (what, max_depth))
    return value

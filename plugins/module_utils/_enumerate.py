# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which references docker_manifest_info inspects: repositories and registry catalogs turned into tags.

Tags come from the tags API and repositories from ``/v2/_catalog`` (distribution-spec v1.1, "Listing
Tags"; the catalog is the distribution registry's extension), both paginated with ``Link``
(``_registry.tags``). Filters are regular expressions (Python ``re.search``); ``limit`` keeps the
newest N tags in semantic-version order when every matched tag is a version, else in name order.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.archfleet.multiarch.plugins.module_utils._concurrency import parallel_map
from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._options import check_dict_form
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import (
    InvalidReferenceError,
    parse_reference,
)

# The dict forms of the repositories and catalog items, checked by check_dict_form. The filters stay raw:
# _patterns and _limit word their own errors (a string is one pattern; a limit is a count, never a bool).
TAG_FILTER_SPEC = dict(include=dict(type="raw"), exclude=dict(type="raw"), limit=dict(type="raw"))
REPOSITORY_SPEC = dict(name=dict(type="str", required=True), **TAG_FILTER_SPEC)
CATALOG_SPEC = dict(registry=dict(type="str", required=True), repositories=dict(type="raw"),
                    exclude_repositories=dict(type="raw"), **TAG_FILTER_SPEC)
# The side tags mode=merge keeps its contributions at (_publish.merge.side_prefix): not releases of their own,
# so enumeration leaves them out (docs/manifests.md, Concurrent merges).
MERGE_SIDE_TAG = re.compile(r"\.merge\.[0-9a-f]{12}\.[0-9a-f]{12}\Z")
_SEMVER = re.compile(r"^v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


class TagFilter:
    """Tag filters of one repository: ``include``/``exclude`` regular expressions and ``limit``."""

    def __init__(self, include=(), exclude=(), limit=None):
        self.include = list(include)
        self.exclude = list(exclude)
        self.limit = limit

    def apply(self, tags):
        """The matching tags, the newest ``limit`` of them when set, in ascending (version or name) order.

        The side tags of ``mode=merge`` (MERGE_SIDE_TAG) are never matched."""
        matched = [t for t in tags if not MERGE_SIDE_TAG.search(t)
                   and (not self.include or any(p.search(t) for p in self.include))
                   and not any(p.search(t) for p in self.exclude)]
        ordered = sort_tags(matched)
        if self.limit is not None:
            ordered = ordered[len(ordered) - self.limit:] if self.limit else []
        return ordered


def version_key(tag):
    """A sort key for a semantic-version tag (``v1.2.3``, ``1.2``, ``1.2.3-rc.1``), or None for other tags.

    Pre-releases sort before their release (semver.org, item 11); missing minor/patch count as 0.
    """
    match = _SEMVER.match(tag)
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    numbers = (int(major), int(minor or 0), int(patch or 0))
    if pre is None:
        return numbers + ((1,),)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return numbers + ((0,) + parts,)


def sort_tags(tags):
    """Semantic-version order when every tag is a version, else name order."""
    keys = [version_key(t) for t in tags]
    if tags and all(k is not None for k in keys):
        return [t for _key, t in sorted(zip(keys, tags))]
    return sorted(tags)


def _patterns(values, where):
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise OptionError("%s must be a list of regular expressions, got %s" % (where, type(values).__name__))
    compiled = []
    for index, value in enumerate(values):
        try:
            compiled.append(re.compile(str(value)))
        except re.error as exc:
            raise OptionError("%s[%d]: %r is not a valid regular expression (%s)" % (where, index, value, exc))
    return compiled


def _limit(value, where):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OptionError("%s must be a number of tags (0 or more), got %r" % (where, value))
    return value


def _filter(item, where):
    return TagFilter(_patterns(item.get("include"), where + ".include"),
                     _patterns(item.get("exclude"), where + ".exclude"), _limit(item.get("limit"), where + ".limit"))


def parse_repositories(values):
    """``[(ImageReference of the repository, TagFilter)]`` from the ``repositories`` option."""
    parsed = []
    for index, item in enumerate(values or []):
        where = "repositories[%d]" % index
        item = check_dict_form(item, where, REPOSITORY_SPEC, "name", "a repository reference")
        try:
            ref = parse_reference(item["name"])
        except InvalidReferenceError as exc:
            raise OptionError("%s: %s" % (where, exc))
        if ref.tag or ref.digest:
            raise OptionError("%s: %r names a tag or digest; give the repository only (its tags are listed)"
                              % (where, item["name"]))
        parsed.append((ref, _filter(item, where)))
    return parsed


def parse_catalogs(values):
    """``[(registry, repository include, repository exclude, TagFilter)]`` from the ``catalog`` option."""
    parsed = []
    for index, item in enumerate(values or []):
        where = "catalog[%d]" % index
        item = check_dict_form(item, where, CATALOG_SPEC, "registry", "a registry host (host or host:port)")
        if not item["registry"] or "/" in item["registry"]:
            raise OptionError("%s must be a registry host (host or host:port), got %r: a catalog lists the "
                              "repositories of a whole registry (choose them with repositories and "
                              "exclude_repositories)" % (where, item["registry"]))
        parsed.append((item["registry"], _patterns(item.get("repositories"), where + ".repositories"),
                       _patterns(item.get("exclude_repositories"), where + ".exclude_repositories"),
                       _filter(item, where)))
    return parsed


class Enumerator:
    """Turn repositories and catalogs into references, with a fact per repository."""

    def __init__(self, client, concurrency=8):
        self.client = client
        self.concurrency = concurrency

    def expand(self, repositories, catalogs):
        """``(refs, repository_facts)``: a reference per matched tag, in a stable order, and per repository
        ``{name, exists, tags, matched}`` (a repository that does not exist is a fact, not a failure)."""
        jobs = list(repositories)
        for registry, include, exclude, tag_filter in catalogs:
            names = self.client.list_repositories(registry) or []
            for name in sorted(names):
                if (include and not any(p.search(name) for p in include)) or any(p.search(name) for p in exclude):
                    continue
                jobs.append((parse_reference("%s/%s" % (registry, name)), tag_filter))
        listed = parallel_map(lambda job: self.client.list_tags(job[0]), jobs, self.concurrency)
        refs, facts = [], []
        for (ref, tag_filter), tags in zip(jobs, listed):
            matched = tag_filter.apply(tags or [])
            facts.append({"name": ref.name, "exists": tags is not None, "tags": len(tags or []), "matched": matched})
            refs.extend(ref.with_tag(tag) for tag in matched)
        return refs, facts

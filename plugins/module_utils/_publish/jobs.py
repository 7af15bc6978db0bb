# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The indexes a docker_manifest_create task asks for, checked before any request (no I/O).

:func:`parse_jobs` turns the module options (``name``/``sources``/``tags``/``annotations``, or each
item of ``indexes``) into :class:`Job` objects, each with its :class:`Source` list, and the options that
apply to all of them into one :class:`PublishOptions`; every invalid value raises OptionError naming the
option path (``indexes[1].sources[0]``), the value and what is allowed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._options import check_dict_form
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import PlatformError, parse_platform
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import (
    InvalidReferenceError,
    parse_reference,
    validate_tag,
)

# The dict form of a source (the module's ``sources`` and ``indexes[].sources``), checked by check_dict_form.
# platform and platforms stay raw: parse_platform and parse_platform_list word their own errors.
SOURCE_SPEC = dict(
    image=dict(type="str", required=True),
    platform=dict(type="raw"),
    platforms=dict(type="raw"),
    annotations=dict(type="raw"),
)
# platform states the platform of a single image; platforms selects entries of an index source.
SOURCE_RULES = dict(mutually_exclusive=[("platform", "platforms")])

# docker_manifest_create's own options (beside the shared registry options) and the rules between them: the
# module hands both to AnsibleModule, so an item of indexes with an unknown or missing key, or indexes next to
# name, is refused by Ansible's validator before parse_jobs runs.
INDEX_SPEC = dict(
    name=dict(type="str", required=True),
    sources=dict(type="list", elements="raw", default=[]),
    tags=dict(type="list", elements="str", default=[]),
    annotations=dict(type="dict", default={}),
)
ARGUMENT_SPEC = dict(
    name=dict(type="str"),
    sources=dict(type="list", elements="raw", default=[]),
    tags=dict(type="list", elements="str", default=[]),
    indexes=dict(type="list", elements="dict", options=INDEX_SPEC),
    media_type=dict(type="str", choices=["auto", "oci", "docker"], default="auto"),
    annotations=dict(type="dict", default={}),
    mode=dict(type="str", choices=["replace", "merge"], default="replace"),
    attestations=dict(type="str", choices=["keep", "drop"], default="keep"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    delete_manifest=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    force_platform=dict(type="bool", default=False),
    referrers=dict(type="str", choices=["skip", "copy"], default="skip"),
    signing_key=dict(type="str", no_log=True),
    signing_key_passphrase=dict(type="str", no_log=True),
    signing_recursive=dict(type="bool", default=False),
)
ARGUMENT_RULES = dict(
    mutually_exclusive=[("indexes", key) for key in ("name", "sources", "tags", "annotations")],
    required_one_of=[("name", "indexes")],
    required_by=dict(signing_key_passphrase="signing_key"),
)


class Source:
    """A source as the user gave it: ``origin`` (the text), ``ref`` (ImageReference), ``platform`` (a parsed
    platform dict stating the platform of a single image, or None), ``annotations`` (dict of str) and
    ``platforms`` (the platform texts to take from an index source, or None: all of them)."""

    __slots__ = ("origin", "ref", "platform", "annotations", "platforms")

    def __init__(self, origin, ref, platform=None, annotations=None, platforms=None):
        self.origin = origin
        self.ref = ref
        self.platform = platform
        self.annotations = annotations or {}
        self.platforms = platforms


class PublishOptions:
    """The docker_manifest_create options that apply to every index of a task, checked (a value, made once by
    :func:`parse_jobs`): ``state``, ``mode``, ``media_type``, ``attestations``, ``referrers`` (strings, the
    module's choices), ``force``, ``force_platform``, ``delete_manifest`` (bools), ``concurrency`` (int >= 1)
    and ``batch`` (whether ``indexes`` was used, which shapes the result)."""

    __slots__ = ("state", "mode", "media_type", "attestations", "referrers", "force", "force_platform",
                 "delete_manifest", "concurrency", "batch")

    def __init__(self, **values):
        for name in self.__slots__:
            object.__setattr__(self, name, values.pop(name))
        if values:
            raise TypeError("PublishOptions has no field %s" % ", ".join(sorted(values)))

    def __setattr__(self, name, value):
        raise AttributeError("PublishOptions is a value: %s cannot be set" % name)

    @classmethod
    def from_params(cls, params):
        """The options of validated module ``params`` (ARGUMENT_SPEC plus the shared ``concurrency``)."""
        return cls(state=params["state"], mode=params["mode"], media_type=params["media_type"],
                   attestations=params["attestations"], referrers=params.get("referrers") or "skip",
                   force=bool(params["force"]), force_platform=bool(params.get("force_platform")),
                   delete_manifest=bool(params.get("delete_manifest")),
                   concurrency=max(1, int(params.get("concurrency") or 1)), batch=bool(params["indexes"]))


def parse_annotations(value, where):
    if not isinstance(value, dict):
        raise OptionError("%s must be a dict of strings, got %s" % (where, type(value).__name__))
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise OptionError("%s: annotation keys must be non-empty strings, got %r" % (where, key))
        if not isinstance(item, str):
            raise OptionError("%s: annotation %r must be a string, got %s %r (quote it)"
                              % (where, key, type(item).__name__, item))
    return dict(value)


class Job:
    """One index to publish: where its parts come from in the options, for messages."""

    def __init__(self, label, target, sources, tags, annotations):
        self.label = label
        self.target = target
        self.sources = sources
        self.tags = tags
        self.annotations = annotations


def parse_sources(values, where="sources"):
    if not isinstance(values, list):
        raise OptionError("%s must be a list of references or dicts, got %s" % (where, type(values).__name__))
    sources = []
    for index, item in enumerate(values):
        item_where = "%s[%d]" % (where, index)
        item = check_dict_form(item, item_where, SOURCE_SPEC, "image", "a reference string", **SOURCE_RULES)
        try:
            ref = parse_reference(item["image"])
        except InvalidReferenceError as exc:
            raise OptionError("%s: %s" % (item_where, exc))
        platform = None
        if item["platform"] is not None:
            try:
                platform = parse_platform(item["platform"])
            except PlatformError as exc:
                raise OptionError("%s: %s" % (item_where, exc))
        annotations = parse_annotations(item["annotations"] or {}, item_where + ".annotations")
        sources.append(Source(item["image"], ref, platform, annotations,
                              parse_platform_list(item, item_where)))
    return sources


def parse_platform_list(item, where):
    """The ``platforms`` of a source dict (texts, each checked), or None when not given."""
    if item.get("platforms") is None:
        return None
    value = item["platforms"]
    if not isinstance(value, list) or not value:
        raise OptionError("%s.platforms must be a non-empty list of platforms (e.g. [linux/amd64, linux/arm64]), "
                          "got %r" % (where, value))
    for index, text in enumerate(value):
        try:
            parse_platform(text)
        except PlatformError as exc:
            raise OptionError("%s.platforms[%d]: %s" % (where, index, exc))
    return [str(text) for text in value]


def parse_target(name, tags, where=""):
    try:
        target = parse_reference(name)
    except InvalidReferenceError as exc:
        raise OptionError("%sname: %s" % (where, exc))
    if target.digest:
        raise OptionError("%sname %r must be a tag, not a digest: an index is published under a tag" % (where, name))
    if target.tag is None:
        target = target.with_tag("latest")
    if not isinstance(tags, list):
        raise OptionError("%stags must be a list of tags, got %s" % (where, type(tags).__name__))
    for index, tag in enumerate(tags):
        try:
            validate_tag(tag)
        except InvalidReferenceError as exc:
            raise OptionError("%stags[%d]: %s" % (where, index, exc))
    return target


def refuse_ignored_options(params):
    """Options the chosen state would silently ignore are an error."""
    if params["state"] == "absent":
        ignored = [key for key in ("sources", "tags", "annotations") if params[key]]
        ignored += ["indexes[%d].%s" % (index, key) for index, item in enumerate(params["indexes"] or [])
                    for key in ("sources", "tags", "annotations") if item.get(key)]
        if ignored:
            raise OptionError("state=absent deletes the tag name and nothing else, so %s cannot be given with it: "
                              "remove %s (delete each extra tag as a name of its own)"
                              % (", ".join(ignored), " and ".join(ignored)))
    elif params.get("delete_manifest"):
        raise OptionError("delete_manifest=true applies to state=absent only: set state=absent, or remove "
                          "delete_manifest")


def parse_jobs(params):
    """``(jobs, options)``: the indexes to publish (the top-level options, or each item of ``indexes``, as
    :class:`Job` objects in order) and the :class:`PublishOptions` shared by all of them.

    ``params`` are the module's, validated against ARGUMENT_SPEC and ARGUMENT_RULES (so exactly one of
    ``name`` and ``indexes``, and every item of ``indexes`` a dict of INDEX_SPEC). Raises OptionError.
    """
    refuse_ignored_options(params)
    if params["indexes"]:
        items = [("indexes[%d]." % index, item["name"], item["sources"] or [], item["tags"] or [],
                  item["annotations"] or {}) for index, item in enumerate(params["indexes"])]
    else:
        items = [("", params["name"], params["sources"], params["tags"], params["annotations"])]
    jobs = []
    seen = {}
    for where, name, sources, tags, annotations in items:
        target = parse_target(name, tags, where)
        job = Job(where.rstrip(".") or target.canonical, target, parse_sources(sources, where + "sources"), tags,
                  parse_annotations(annotations, where + "annotations"))
        if params["state"] == "present" and not job.sources:
            raise OptionError("%ssources must list at least one image when state=present" % where)
        if params["media_type"] == "docker" and job.annotations:
            raise OptionError("%sannotations cannot be written to a Docker manifest list (media_type=docker): use "
                              "media_type=oci or auto, or remove annotations %s" % (where, sorted(job.annotations)))
        for tag_ref in [target] + [target.with_tag(t) for t in tags]:
            if tag_ref.canonical in seen:
                if seen[tag_ref.canonical] == job.label:
                    raise OptionError("%s is listed twice in %s (name and tags)" % (tag_ref.canonical, job.label))
                raise OptionError("%s is published twice (by %s and %s)"
                                  % (tag_ref.canonical, seen[tag_ref.canonical], job.label))
            seen[tag_ref.canonical] = job.label
        jobs.append(job)
    return jobs, PublishOptions.from_params(params)

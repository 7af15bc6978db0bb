# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data of the build_images and publish_manifests roles, as pure functions (no I/O).

Controller-only (used by the ``platform_builds``, ``platform_conflicts``, ``build_results``,
``index_platforms`` and ``release_plan`` filters). Platforms are written ``os/architecture[/variant]``
with the names of the OCI image-spec ``platform`` object (image-index.md), normalised as
``_oci.platform.parse_platform`` does (containerd's ``platforms.Parse``). Every function raises
``BuildDataError`` (a ``ValueError``) with one sentence naming the value that is wrong.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    format_platform,
    is_platform_entry,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import PlatformError, parse_platform

_DOCKER_PUSH_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class BuildDataError(ValueError):
    """One sentence naming the value and what is allowed."""


def platform_name(platform):
    """``os/architecture[/variant]`` of a parsed platform (a dict as ``parse_platform`` returns), or of a string."""
    if isinstance(platform, str):
        try:
            platform = parse_platform(platform)
        except PlatformError as exc:
            raise BuildDataError(str(exc))
    return "/".join(part for part in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if part)


def platform_builds(platforms, image, tag, host):
    """One build per platform: a list of dicts, in the order given.

    Each dict: ``given`` (the platform as written), ``platform`` (normalised ``os/arch[/variant]``), ``os``,
    ``architecture``, ``variant`` ('' when none), ``host``, and ``image`` and ``reference``, both the per-platform
    tag ``<image>:<tag>-<os>-<arch>[-<variant>]``. Raises BuildDataError for an invalid platform name.
    """
    if not isinstance(platforms, (list, tuple)):
        raise BuildDataError("platforms must be a list of platform names such as 'linux/arm64', got %r" % (platforms,))
    builds = []
    for given in platforms:
        try:
            parsed = parse_platform(given)
        except PlatformError as exc:
            raise BuildDataError(str(exc))
        parts = [part for part in (parsed["os"], parsed["architecture"], parsed["variant"]) if part]
        name = "%s:%s-%s" % (image, tag, "-".join(parts))
        builds.append({"given": given, "platform": "/".join(parts), "os": parsed["os"],
                       "architecture": parsed["architecture"], "variant": parsed["variant"] or "", "host": host,
                       "image": name, "reference": name})
    return builds


def platform_conflicts(builds):
    """Platforms that more than one host builds: ``[{'platform': ..., 'hosts': [...]}]``, sorted by platform.

    ``builds`` is a list of dicts with ``platform`` and ``host`` (what platform_builds and build_results give);
    the hosts of a platform are listed in the order the builds are.
    """
    hosts = {}
    for build in builds:
        hosts.setdefault(build["platform"], []).append(build["host"])
    return [{"platform": platform, "hosts": names} for platform, names in sorted(hosts.items()) if len(names) > 1]


def _skipped(result):
    return bool(result.get("skipped"))


def _last_line(result):
    lines = result.get("stdout_lines") or []
    return lines[-1] if lines else ""


def _hold(result):
    result.update(digest="", reference="", held=True)
    return result


def build_results(builds, image, tag, host, engine, before, built, pushed, registry, held=False):
    """``build_images_results`` of a host that built each platform on its own (``docker build``, ``podman build``).

    ``before``, ``built`` and ``pushed`` are the ``results`` of the looped tasks that read the image IDs, built
    and pushed (one per build, in order); ``registry`` the ``images`` of docker_manifest_info on the per-platform
    tags. A push that was skipped with no ``skip_reason`` is one check mode would have run: the platform is
    ``pending`` and its digest is '' (known only after a real push). A skipped push keeps the registry's digest;
    docker push prints ``digest: sha256:...``, podman push ``--digestfile /dev/stdout`` the digest alone.
    With podman, ``local_reference`` is the image ID the host runs the image by (its store never knows the
    pushed digest). ``held``: the host held its pushes because another build host of the play failed or was
    unreachable; every result then has ``held`` true and an empty ``digest`` and ``reference``.
    Raises BuildDataError when the lists do not line up or docker push printed no digest.
    """
    if not len(builds) == len(before) == len(built) == len(pushed) == len(registry):
        raise BuildDataError("build_results needs one result per build (%d builds, %d before, %d built, %d pushed, "
                             "%d registry images)" % (len(builds), len(before), len(built), len(pushed), len(registry)))
    results = []
    for build, was, made, push, tagged in zip(builds, before, built, pushed, registry):
        pending = _skipped(push) and "skip_reason" not in push and not held
        if pending or held:
            digest = ""
        elif _skipped(push):
            digest = tagged.get("digest") or ""
        else:
            found = (_DOCKER_PUSH_DIGEST if engine == "docker" else _DIGEST).search(push.get("stdout") or "")
            if found is None and engine == "docker":
                raise BuildDataError("docker push of %s printed no digest: %r" % (build["image"],
                                                                                  (push.get("stdout") or "")[-300:]))
            digest = found.group(found.re.groups) if found else ""
        result = {"platform": build["platform"], "image": build["image"], "digest": digest,
                  "reference": "%s@%s" % (image, digest), "repository": image, "tag": tag, "host": host,
                  "pending": pending}
        image_id = (_last_line(made) if made.get("stdout_lines") else was.get("stdout") or "").strip()
        if engine == "podman" and image_id:
            result["local_reference"] = image_id
        results.append(_hold(result) if held else result)
    return results


def index_results(builds, image, tag, host, index_name, index, pending, held=False):
    """``build_images_results`` of a host whose platforms BuildKit pushed as one index (``--push``).

    ``index`` is the docker_manifest_info image facts of ``index_name`` (``exists``, ``digest``, ``manifests``
    with ``platform_string`` and ``digest``). Each platform's ``digest`` is its entry's (''  when ``pending``, in
    check mode, or when the index lacks it), ``reference`` the index by digest, and ``from_index`` is true.
    ``held`` as in build_results.
    """
    results = []
    for build in builds:
        digest = ""
        if index.get("exists") and not pending:
            digest = next((entry["digest"] for entry in index.get("manifests") or []
                           if entry.get("platform_string") == build["platform"]), "")
        result = {"platform": build["platform"], "image": index_name, "digest": digest,
                  "reference": "%s@%s" % (image, index["digest"]) if digest else "", "repository": image,
                  "tag": tag, "host": host, "pending": bool(pending) and not held, "from_index": True}
        results.append(_hold(result) if held else result)
    return results


def index_platforms(document):
    """``{platform: digest}`` of the images an OCI index or Docker manifest list lists.

    Attestation manifests (``vnd.docker.reference.type``) and ``unknown/unknown`` entries are left out; the
    platform is written as the index states it (``os/architecture[/variant]``). OCI image-spec, image-index.md.
    """
    if not isinstance(document, dict):
        raise BuildDataError("index_platforms needs an index document (a dict with manifests), got %r"
                             % (type(document).__name__,))
    return {format_platform(entry["platform"]): entry.get("digest")
            for entry in document.get("manifests") or [] if isinstance(entry, dict) and is_platform_entry(entry)}


def release_sources(results):
    """docker_manifest_create ``sources`` pinned by digest, one per reported platform, in order.

    A platform of an index BuildKit pushed (``from_index``) is taken from that index with the attestation
    manifest that describes it (``platforms: [p]``); any other is the image itself (``platform: p``).
    """
    return [{"image": result["reference"], "platforms": [result["platform"]]} if result.get("from_index")
            else {"image": result["reference"], "platform": result["platform"]} for result in results]


def release_plan(hosts, required=None):
    """What a release from these build hosts holds and lacks.

    ``hosts`` is a list of dicts, one per build host: ``host`` (the name), ``results`` (its ``build_images_results``,
    or None when it reported none: it failed or was unreachable) and ``platforms`` (the platforms it was to build,
    or None when unknown). ``required`` lists platforms the release must have ([] or None: what the hosts were to
    build). Returns a dict: ``results`` (every reported result that is not ``held``, in host order), ``sources``
    (release_sources of them), ``platforms`` (their platforms), ``held`` (the results of hosts that held their
    pushes because another host was missing), ``missing_hosts`` (``[{'host', 'platforms'}]`` of the hosts that
    reported nothing; ``platforms`` None when unknown), ``missing_platforms`` (sorted: required, planned or held,
    and not in ``platforms``), ``missing_required`` (those of ``required``), ``conflicts`` (platform_conflicts of
    the results) and ``complete`` (no host and no platform missing).
    Raises BuildDataError for an invalid platform name in ``required`` or ``platforms``.
    """
    results, held, missing_hosts, wanted = [], [], [], set()
    for entry in hosts:
        planned = entry.get("platforms")
        planned = None if planned is None else [platform_name(platform) for platform in planned]
        if entry.get("results") is None:
            missing_hosts.append({"host": entry["host"], "platforms": planned})
            wanted.update(planned or [])
        else:
            results.extend(result for result in entry["results"] if not result.get("held"))
            held.extend(result for result in entry["results"] if result.get("held"))
    reported = [result["platform"] for result in results]
    needed = set(platform_name(platform) for platform in required or [])
    wanted.update(needed)
    wanted.update(result["platform"] for result in held)
    missing = sorted(wanted - set(reported))
    return {"results": results, "sources": release_sources(results), "platforms": reported, "held": held,
            "missing_hosts": missing_hosts, "missing_platforms": missing,
            "missing_required": sorted(needed - set(reported)),
            "conflicts": platform_conflicts(results), "complete": not missing_hosts and not missing}

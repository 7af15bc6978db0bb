# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts for docker_manifest_info: many references read at once through the shared RegistryClient.

One manifest GET per reference (plus the image config of single-platform images, and of every
entry with ``config``); the shaping of documents into facts is pure (``_oci.manifest``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._concurrency import parallel_map
from ansible_collections.archfleet.multiarch.plugins.module_utils._module import OptionError, parse_references
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    config_facts,
    index_facts,
    is_image_manifest,
    is_index,
    platform_from_config,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import PlatformError, format_platform, match_key, parse_platform
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError


def parse_options(params):
    """The references of ``images`` (ImageReference list) once every option checked; OptionError otherwise."""
    refs = parse_references(params["images"], "images")
    for index, text in enumerate(params["require_platforms"]):
        try:
            parse_platform(text)
        except PlatformError as exc:
            raise OptionError("require_platforms[%d]: %s" % (index, exc))
    return refs


def _empty_facts(ref):
    return {
        "reference": ref.original if ref.original is not None else ref.canonical,
        "canonical": ref.canonical,
        "registry": ref.registry,
        "repository": ref.repository,
        "tag": ref.tag,
        "exists": False,
        "digest": None,
        "media_type": None,
        "size": None,
        "kind": None,
        "platforms": [],
        "manifests": [],
        "attestations": [],
        "annotations": {},
    }


class ManifestFacts:
    """Inspect references: one manifest GET each, plus what ``fetch_config`` asks for."""

    def __init__(self, client, fetch_config=False, required_platforms=None):
        self.client = client
        self.fetch_config = fetch_config
        # (text as given, normalised key) for each required platform
        self.required = [(text, match_key(text)) for text in (required_platforms or [])]

    def gather(self, refs, concurrency=8):
        """Facts for every reference, in input order. Tokens are fetched per registry up front."""
        by_registry = {}
        for ref in refs:
            by_registry.setdefault(ref.registry, set()).add(ref.repository)
        for registry, repositories in by_registry.items():
            self.client.authorize(registry, [(repo, ("pull",)) for repo in sorted(repositories)])
        return parallel_map(self.inspect, refs, concurrency)

    def inspect(self, ref):
        facts = _empty_facts(ref)
        manifest = self.client.get_manifest(ref)
        if manifest is None:
            self._add_missing(facts)
            return facts
        document = manifest.json()
        facts.update({
            "exists": True,
            "digest": manifest.digest,
            "media_type": manifest.media_type,
            "size": manifest.size,
        })
        if is_index(manifest.media_type, document):
            facts["kind"] = "index"
            facts.update(index_facts(document))
            if self.fetch_config:
                for entry in facts["manifests"]:
                    if is_image_manifest(entry["media_type"]):
                        entry["config"] = self._config(ref.with_digest(entry["digest"]))[1]
        elif is_image_manifest(manifest.media_type, document):
            facts["kind"] = "image"
            config, details = self._config(ref, document)
            platform = platform_from_config(config)
            entry = {
                "digest": manifest.digest,
                "size": manifest.size,
                "media_type": manifest.media_type,
                "platform": platform,
                "platform_string": format_platform(platform),
                "annotations": dict(document.get("annotations") or {}),
            }
            if self.fetch_config:
                entry["config"] = details
                facts["config"] = details
            facts["manifests"] = [entry]
            facts["platforms"] = [entry["platform_string"]] if platform.get("architecture") else []
            facts["annotations"] = dict(document.get("annotations") or {})
        else:
            facts["kind"] = "unknown"
        self._add_missing(facts)
        return facts

    def _config(self, ref, document=None):
        """(config JSON, config facts) of an image manifest; reads the manifest first if not given."""
        if document is None:
            child = self.client.get_manifest(ref, what="reading child manifest")
            if child is None:
                raise RegistryError("index entry %s is listed but its manifest is missing from the registry"
                                    % ref.canonical, code="MANIFEST_UNKNOWN")
            document = child.json()
        config = self.client.get_image_config(ref, document)
        return config, config_facts(config, document)

    def _add_missing(self, facts):
        if not self.required:
            return
        present = set()
        for entry in facts["manifests"]:
            if entry.get("platform"):
                present.add(match_key(entry["platform"]))
        facts["missing_platforms"] = [text for text, key in self.required if key not in present]

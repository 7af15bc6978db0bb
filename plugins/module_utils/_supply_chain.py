# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Supply-chain facts for docker_manifest_info: artifacts, referrers, attestation predicate types.

``referrers`` (the module option) is false (nothing read, nothing changes), true (every referrer)
or a list of artifact types to keep. With it, each image and each platform entry of an index gets
``referrers`` (``_registry.referrers``: the Referrers API, else the tag schema, plus cosign's
legacy tags) and ``supply_chain`` (``signed``, ``sbom``, ``provenance``); each buildx attestation
entry gets the in-toto ``predicate_types`` of its layers (one manifest GET per attestation).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._module import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    artifact_facts,
    is_artifact_manifest,
    predicate_types,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.referrers import supply_chain
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.referrers import Referrers

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0", "")


def parse_referrers_option(value, option="referrers"):
    """None (off), [] (every referrer) or the list of artifact types to keep; OptionError otherwise."""
    if value is None or value is False:
        return None
    if value is True:
        return []
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return [] if value.strip().lower() in _TRUE else None
    if isinstance(value, list) and value and all(isinstance(item, str) and item.strip() for item in value):
        return [item.strip() for item in value]
    raise OptionError("%s must be true, false or a non-empty list of artifact types (media type strings such as "
                      "application/spdx+json), got %r" % (option, value))


def artifact_update(media_type, document):
    """The facts that make a manifest (or an index with ``artifactType``) an artifact; {} for anything else."""
    if is_artifact_manifest(media_type, document) or (isinstance(document, dict) and document.get("artifactType")
                                                      and "manifests" in document):
        facts = artifact_facts(document)
        facts["kind"] = "artifact"
        return facts
    return {}


class SupplyChain:
    """Adds referrers, predicate types and the supply-chain summary to the facts of inspected images."""

    def __init__(self, client, artifact_types):
        self.client = client
        self.artifact_types = artifact_types or None
        self.referrers = Referrers(client)

    def add(self, ref, facts):
        if not facts.get("exists") or not facts.get("digest") or facts.get("kind") in ("schema1", "unknown"):
            return
        facts["referrers"] = self.referrers.list(ref, facts["digest"], self.artifact_types)
        for attestation in facts.get("attestations") or []:
            attestation["predicate_types"] = self._predicates(ref, attestation)
        for entry in facts.get("manifests") or []:
            if entry.get("digest") == facts["digest"]:
                entry["referrers"] = facts["referrers"]
            elif entry.get("kind") in ("image", "index"):
                entry["referrers"] = self.referrers.list(ref, entry["digest"], self.artifact_types)
            else:
                continue
            described = [a for a in facts.get("attestations") or [] if a.get("reference_digest") == entry["digest"]]
            entry["supply_chain"] = supply_chain(entry["referrers"], described)
        facts["supply_chain"] = supply_chain(facts["referrers"])

    def _predicates(self, ref, attestation):
        manifest = self.client.get_manifest(ref.with_digest(attestation["digest"]), what="reading attestation")
        return predicate_types(manifest.json()) if manifest is not None else []

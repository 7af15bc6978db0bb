# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Supply-chain facts for docker_manifest_info: artifacts, referrers, attestation predicate types.

``referrers`` (the module option) is false (nothing read, nothing changes), true (every referrer)
or a list of artifact types to keep. With it, each image and each platform entry of an index gets
``referrers`` (``_registry.referrers``: the Referrers API, else the tag schema, plus cosign's
legacy tags) and ``supply_chain`` (``signed``, ``signers``, ``signature_present``, ``sbom``,
``provenance``); each buildx attestation entry gets the in-toto ``predicate_types`` of its layers (one
manifest GET per attestation).

``signature_keys`` (public keys, ``_signatures``) and/or ``certificate_identity``, ``certificate_oidc_issuer``
and ``trusted_root`` (``_sigstore``): each signature referrer is read (one manifest GET, one blob GET per
signature layer or Sigstore bundle) and every signature it holds verified against the keys or the
certificate policy, for the subject's digest and repository: ``signatures`` facts per image and platform
entry, and ``signed`` is true only when one verified. Without either nothing is verified and ``signed``
is false.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._module import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    artifact_facts,
    is_artifact_manifest,
    predicate_types,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.cosign import (
    BUNDLE_TYPES,
    MAX_PAYLOAD_SIZE,
    signature_layers,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.referrers import category, supply_chain
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.referrers import Referrers
from ansible_collections.archfleet.multiarch.plugins.module_utils._signatures import (
    _read_file,
    parse_signature_keys,
    verify_bundle,
    verify_layer,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._sigstore import parse_certificate_options

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


# Errors reading a signature that are the signature's (a fact), not the task's access to the registry.
SIGNATURE_READ_CODES = frozenset(("BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "DIGEST_MISMATCH", "DIGEST_INVALID",
                                  "MANIFEST_INVALID", "SIZE_INVALID", "NAME_UNKNOWN"))


def parse_verification_options(params):
    """The PublicKey list of ``signature_keys`` (parse_trust_options without the certificate policy)."""
    return parse_trust_options(params)[0]


def parse_trust_options(params):
    """``(PublicKey list, CertificatePolicy or None)`` of ``signature_keys`` and ``certificate_identity``,
    ``certificate_oidc_issuer``, ``trusted_root``; OptionError when given but signatures are not read."""
    keys = parse_signature_keys(params.get("signature_keys"))
    policy = parse_certificate_options(params, _read_file)
    if keys or policy:
        option = "signature_keys" if keys else "certificate_identity"
        types = parse_referrers_option(params.get("referrers"))
        if types is None:
            raise OptionError("%s verifies the signatures that referrers finds: set referrers=true "
                              "(or remove %s)" % (option, option))
        if types and not any(category(artifact_type) == "signature" for artifact_type in types):
            raise OptionError("%s verifies signatures, but referrers keeps only %s: add "
                              "application/vnd.dev.cosign.artifact.sig.v1+json, or set referrers=true"
                              % (option, ", ".join(types)))
    return keys, policy


class SupplyChain:
    """Adds referrers, predicate types, verified signatures and the supply-chain summary to image facts."""

    def __init__(self, client, artifact_types, keys=None, policy=None):
        self.client = client
        self.artifact_types = artifact_types or None
        self.referrers = Referrers(client)
        self.keys = keys or []
        self.policy = policy

    def add(self, ref, facts):
        if not facts.get("exists") or not facts.get("digest") or facts.get("kind") in ("schema1", "unknown"):
            return
        facts["referrers"] = self.referrers.list(ref, facts["digest"], self.artifact_types)
        facts_signatures = self.signatures(ref, facts["digest"], facts["referrers"])
        for attestation in facts.get("attestations") or []:
            attestation["predicate_types"] = self._predicates(ref, attestation)
        for entry in facts.get("manifests") or []:
            if entry.get("digest") == facts["digest"]:
                entry["referrers"] = facts["referrers"]
                signatures = facts_signatures
            elif entry.get("kind") in ("image", "index"):
                entry["referrers"] = self.referrers.list(ref, entry["digest"], self.artifact_types)
                signatures = self.signatures(ref, entry["digest"], entry["referrers"])
            else:
                continue
            if signatures is not None:
                entry["signatures"] = signatures
            described = [a for a in facts.get("attestations") or [] if a.get("reference_digest") == entry["digest"]]
            entry["supply_chain"] = supply_chain(entry["referrers"], described, signatures)
        if facts_signatures is not None:
            facts["signatures"] = facts_signatures
        facts["supply_chain"] = supply_chain(facts["referrers"], signatures=facts_signatures)

    def signatures(self, ref, digest, referrers):
        """The verification fact of every signature attached to ``digest``; None without keys or policy."""
        if not self.keys and self.policy is None:
            return None
        found = []
        for referrer in referrers:
            if referrer.get("category") == "signature":
                found.extend(self._verify_referrer(ref, digest, referrer))
        return found

    def _verify_referrer(self, ref, digest, referrer):
        base = {"referrer": referrer.get("digest"), "source": referrer.get("source"),
                "artifact_type": referrer.get("artifact_type")}
        try:
            manifest = self.client.get_manifest(ref.with_digest(referrer["digest"]), what="reading signature")
            if manifest is None:
                return [dict(base, layer=None, verified=False, key_id=None, identity=None, issuer=None,
                             reason="unreadable",
                             message="the signature manifest %s is gone" % referrer["digest"])]
            document = manifest.json()
        except (RegistryError, ValueError) as exc:
            if isinstance(exc, RegistryError) and exc.code not in SIGNATURE_READ_CODES:
                raise
            return [dict(base, layer=None, verified=False, key_id=None, identity=None, issuer=None,
                         reason="unreadable", message=str(exc))]
        simple, others = signature_layers(document if isinstance(document, dict) else {})
        bundles = [layer for layer in others if layer.get("mediaType") in BUNDLE_TYPES]
        facts = []
        for layer in simple + bundles:
            fact = dict(base, layer=layer.get("digest"))
            try:
                payload = self.client.get_blob(ref, layer.get("digest"), max_size=MAX_PAYLOAD_SIZE,
                                               what="reading signed payload")
            except RegistryError as exc:
                if exc.code not in SIGNATURE_READ_CODES:
                    raise
                fact.update(verified=False, key_id=None, identity=None, issuer=None,
                            reason="unreadable", message=str(exc))
            else:
                if layer in bundles:
                    fact.update(verify_bundle(self.keys, payload, digest, self.policy))
                else:
                    fact.update(verify_layer(self.keys, layer, payload, digest, ref.registry, ref.repository,
                                             self.policy))
            facts.append(fact)
        if not simple and not bundles:
            kinds = sorted(set(str(layer.get("mediaType")) for layer in others)) or ["no layers"]
            facts.append(dict(base, layer=None, verified=False, key_id=None, identity=None, issuer=None,
                              reason="unsupported",
                              message="not a cosign signature (%s); only simple-signing layers and Sigstore bundles "
                              "are verified"
                              % ", ".join(kinds)))
        return facts

    def _predicates(self, ref, attestation):
        manifest = self.client.get_manifest(ref.with_digest(attestation["digest"]), what="reading attestation")
        return predicate_types(manifest.json()) if manifest is not None else []

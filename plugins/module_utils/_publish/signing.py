# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``signing_key`` in docker_manifest_create: each index written is signed as ``cosign sign --key`` signs it.

Planned with the index (reads only): the index digest's signatures are read and verified with the key's
public half (``_supply_chain``); one that verifies for this digest and repository means nothing to do,
so a re-run writes nothing. Applied after the index: the simple-signing payload is signed and written
as an OCI 1.1 referrer (as cosign's ``oci-1-1`` mode writes it: config media type
``application/vnd.dev.cosign.artifact.sig.v1+json``, ``subject`` the index) where the registry has the
Referrers API, else in cosign's tag scheme (``<alg>-<hex>.sig``, the signature appended as a layer to
what is there). A refused write fails the
task naming the digest that was not signed; the index stays written and a re-run signs it.

``signing_recursive`` (as ``cosign sign --recursive``; off by default, as in cosign) also signs each platform
manifest the index lists (not buildx attestation entries), each planned and written the same way and each
skipped when a signature by the key already verifies for it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.cosign import (
    signature_config,
    signature_layer,
    signature_layers,
    simple_signing_payload,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import REFERENCE_TYPE_ANNOTATION
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_MANIFEST, sha256_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.referrers import (
    COSIGN_SIGNATURE,
    cosign_tags,
    referrer_descriptor,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError
from ansible_collections.archfleet.multiarch.plugins.module_utils._signatures import (
    _read_file,
    load_signing_key,
    sign_payload,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._supply_chain import SupplyChain

IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"


def parse_signing_options(params):
    """``(private key, PublicKey)`` of ``signing_key`` (PEM text or a file) and its passphrase; None without.

    A passphrase without a key is refused by the module's argument spec (``required_by``).
    """
    text, passphrase = params.get("signing_key"), params.get("signing_key_passphrase")
    if not text:
        if params.get("signing_recursive"):
            raise OptionError("signing_recursive signs the platforms with signing_key: give signing_key (or set "
                              "signing_recursive=false)")
        return None
    if params.get("state") == "absent":
        raise OptionError("signing_key signs what state=present writes; remove it with state=absent")
    if "-----BEGIN" not in text:
        text = _read_file(text.strip(), "signing_key", kind="a PEM private key")
    return load_signing_key(text, passphrase)


class Signer:
    """Plans and writes the signature of each index of a task with one key."""

    def __init__(self, client, key, public, recursive=False):
        self.client = client
        self.key = key
        self.public = public
        self.recursive = recursive
        self.checker = SupplyChain(client, None, [public])

    def plan(self, target, digest, document=None):
        """``{digest, key_id, sign, form}``: ``sign`` is false when a signature by the key already verifies. With
        ``recursive`` and an index ``document``, ``platforms`` lists the same for each platform manifest
        (``{digest, platform, media_type, size, sign, form}``) and ``sign`` is true when any is to be signed."""
        planned = self._plan_one(target, digest)
        planned["key_id"] = self.public.key_id
        if self.recursive:
            planned["platforms"] = []
            for entry in platform_entries(document):
                child = self._plan_one(target, entry["digest"])
                child.update(platform=_platform_string(entry.get("platform")), media_type=entry.get("mediaType"),
                             size=entry.get("size"))
                planned["platforms"].append(child)
            planned["index_sign"] = planned["sign"]
            planned["sign"] = planned["sign"] or any(child["sign"] for child in planned["platforms"])
        return planned

    def _plan_one(self, target, digest):
        referrers = self.checker.referrers.list(target, digest)
        verified = [fact for fact in self.checker.signatures(target, digest, referrers) if fact["verified"]]
        return {"digest": digest, "sign": not verified, "form": None if verified else self._form(target)}

    def _form(self, target):
        return "referrer" if self.checker.referrers.supports_api(target.registry) else "tag"

    def apply(self, target, item, media_type, size):
        """Write the signature of ``item['digest']`` (and, recursive, of each platform to be signed); RegistryError
        naming what was not signed when the registry refuses."""
        if item.get("index_sign", item["sign"]):
            self._apply_one(target, item, media_type, size, "the index")
        for child in item.get("platforms") or []:
            if child["sign"]:
                self._apply_one(target, child, child["media_type"], child["size"],
                                "the platform %s of the index" % child["platform"])

    def _apply_one(self, target, item, media_type, size, what):
        digest = item["digest"]
        data = simple_signing_payload(digest, "%s/%s" % (target.registry, target.repository))
        try:
            layer = signature_layer(self.client.push_blob(target, data), len(data), sign_payload(self.key, data))
            if item["form"] == "referrer":
                self._write_referrer(target, digest, media_type, size, layer)
            else:
                self._write_tag(target, digest, layer)
        except RegistryError as exc:
            raise RegistryError("%s %s was written but not signed: %s" % (what, target.with_digest(digest).canonical,
                                                                          exc), code=exc.code, status=exc.status)

    def _write_referrer(self, target, digest, media_type, size, layer):
        # As cosign --registry-referrers-mode=oci-1-1 writes it (and cosign verify --experimental-oci11 reads it):
        # the artifact type as the config's media type, the signature image config as the config blob.
        config = signature_config([layer["digest"]])
        document = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                    "config": {"mediaType": COSIGN_SIGNATURE, "digest": self.client.push_blob(target, config),
                               "size": len(config)},
                    "layers": [layer], "subject": {"mediaType": media_type, "digest": digest, "size": size}}
        body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")
        if not self.checker.referrers.put_referrer(target, body, MEDIA_OCI_MANIFEST):
            self.checker.referrers.update_tag_schema(
                target, digest, [referrer_descriptor(MEDIA_OCI_MANIFEST, sha256_digest(body), len(body), document)])

    def _write_tag(self, target, digest, layer):
        tag_ref = target.with_tag(cosign_tags(digest)[0][0])
        current = self.client.get_manifest(tag_ref, what="reading cosign signature tag")
        layers = signature_layers(current.json())[0] if current is not None else []
        layers = layers + [layer]
        config = signature_config([entry["digest"] for entry in layers])
        document = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                    "config": {"mediaType": IMAGE_CONFIG, "digest": self.client.push_blob(target, config),
                               "size": len(config)},
                    "layers": layers}
        body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")
        self.client.put_manifest(tag_ref, body, MEDIA_OCI_MANIFEST, what="writing cosign signature tag")


def _platform_string(platform):
    platform = platform or {}
    text = "%s/%s" % (platform.get("os") or "unknown", platform.get("architecture") or "unknown")
    return text + ("/" + platform["variant"] if platform.get("variant") else "")


def platform_entries(document):
    """The platform manifests an index lists (``cosign sign --recursive`` signs them), buildx attestation
    entries left out; [] for an image manifest."""
    return [entry for entry in (document or {}).get("manifests") or []
            if isinstance(entry, dict) and entry.get("digest")
            and not (entry.get("annotations") or {}).get(REFERENCE_TYPE_ANNOTATION)]

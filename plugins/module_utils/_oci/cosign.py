# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cosign signatures, pure part (no I/O, no cryptography): the layers of a signature manifest, the
base64 signature of a layer and the claims of its simple-signing payload.

cosign (``cosign sign``, both in its ``<alg>-<hex>.sig`` tag scheme and as an OCI 1.1 referrer) writes
one manifest whose layers are signatures: each layer of media type
``application/vnd.dev.cosign.simplesigning.v1+json`` is the payload (the bytes that were signed) and
carries the base64 signature in the annotation ``dev.cosignproject.cosign/signature``. The payload is
containers/image's "simple signing" JSON::

    {"critical": {"identity": {"docker-reference": "registry/repository"},
                  "image": {"docker-manifest-digest": "sha256:..."},
                  "type": "cosign container image signature"},
     "optional": {...}}

A signature counts for an image only when it verifies AND names that image's digest and repository.
Every failure is a reason (REASONS) and one sentence.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import (
    ReferenceError,
    parse_reference,
    registry_key,
)

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
MAX_PAYLOAD_SIZE = 1024 * 1024

# Why a signature does not count, in the order they are checked.
REASONS = (
    "unreadable",        # the signature manifest or its payload blob could not be read
    "unsupported",       # not a cosign simple-signing layer (a Sigstore bundle, a Notation signature)
    "bad-signature",     # no annotation, not base64, or not a signature any given key can have made
    "other-key",         # well-formed, but verified by none of the given keys (another key, or altered)
    "bad-payload",       # verified, but the payload is not simple-signing JSON
    "other-digest",      # verified, but signed for another manifest digest
    "other-repository",  # verified, but the docker-reference names another repository
)


class SignatureFormatError(ValueError):
    """A signature or payload is not what cosign writes; ``reason`` is one of REASONS."""

    def __init__(self, reason, message):
        super(SignatureFormatError, self).__init__(message)
        self.reason = reason


def signature_layers(document):
    """``(simple-signing layers, other layers)`` of a signature manifest (each a descriptor dict)."""
    layers = [layer for layer in (document or {}).get("layers") or [] if isinstance(layer, dict)]
    return ([layer for layer in layers if layer.get("mediaType") == SIMPLESIGNING],
            [layer for layer in layers if layer.get("mediaType") != SIMPLESIGNING])


def decode_signature(layer):
    """The signature bytes of a simple-signing layer; SignatureFormatError ``bad-signature`` otherwise."""
    text = ((layer or {}).get("annotations") or {}).get(SIGNATURE_ANNOTATION)
    if not isinstance(text, str) or not text.strip():
        raise SignatureFormatError("bad-signature", "the layer has no %s annotation" % SIGNATURE_ANNOTATION)
    try:
        signature = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureFormatError("bad-signature", "the %s annotation is not base64 (%d characters)"
                                   % (SIGNATURE_ANNOTATION, len(text)))
    if not signature:
        raise SignatureFormatError("bad-signature", "the %s annotation is empty" % SIGNATURE_ANNOTATION)
    return signature


def parse_payload(body):
    """``(manifest digest, docker-reference)`` the simple-signing payload names; SignatureFormatError otherwise."""
    try:
        document = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (UnicodeDecodeError, ValueError):
        raise SignatureFormatError("bad-payload", "the signed payload is not JSON")
    critical = document.get("critical") if isinstance(document, dict) else None
    image = critical.get("image") if isinstance(critical, dict) else None
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str) or not digest:
        raise SignatureFormatError("bad-payload", "the signed payload is not a simple-signing document "
                                   "(no critical.image.docker-manifest-digest)")
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    return digest, reference if isinstance(reference, str) else None


def same_repository(docker_reference, registry, repository):
    """Whether a payload's docker-reference (``registry/repository``, maybe with a tag) is that repository."""
    try:
        ref = parse_reference(docker_reference)
    except (ReferenceError, ValueError, TypeError):
        return False
    return registry_key(ref.registry) == registry_key(registry) and ref.repository == repository


def check_claims(payload, subject_digest, registry, repository):
    """``(signed digest, docker-reference)``; SignatureFormatError when the payload is not about this image."""
    digest, reference = parse_payload(payload)
    if digest != subject_digest:
        raise SignatureFormatError("other-digest", "the payload is signed for %s, not %s" % (digest, subject_digest))
    if reference is None:
        raise SignatureFormatError("bad-payload", "the signed payload has no critical.identity.docker-reference")
    if not same_repository(reference, registry, repository):
        raise SignatureFormatError("other-repository", "the payload is signed for repository %s, not %s/%s"
                                   % (reference, registry, repository))
    return digest, reference


# -- writing (what cosign writes, for signing on publish) -----------------------------------------
def simple_signing_payload(digest, docker_reference):
    """The payload cosign signs for ``digest`` (sigstore's payload.Cosign, the same bytes: sorted keys, no spaces)."""
    document = {"critical": {"identity": {"docker-reference": docker_reference},
                             "image": {"docker-manifest-digest": digest},
                             "type": "cosign container image signature"},
                "optional": None}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signature_layer(payload_digest, payload_size, signature):
    """The layer descriptor of one signature: the payload blob, the base64 signature as its annotation."""
    return {"mediaType": SIMPLESIGNING, "size": payload_size, "digest": payload_digest,
            "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode("ascii")}}


def signature_config(payload_digests):
    """The image config of cosign's tag-scheme signature manifest (one diff id per payload layer)."""
    document = {"architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z",
                "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                "rootfs": {"diff_ids": list(payload_digests), "type": "layers"}}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")

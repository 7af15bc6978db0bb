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
    InvalidReferenceError,
    parse_reference,
    same_repository as _same_repository_ref,
)

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
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
    # a certificate (certificate_identity, certificate_oidc_issuer, trusted_root; _sigstore)
    "untrusted-certificate",  # does not chain to the trusted root, or does not allow code signing
    "other-identity",    # chains, but is for another identity (subjectAltName)
    "other-issuer",      # chains, but its Fulcio OIDC issuer is another
    "expired-certificate",  # not valid at the time of verification (no signing time is verified offline)
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
    except (InvalidReferenceError, ValueError, TypeError):
        return False
    return _same_repository_ref(ref, registry, repository)


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


# -- Sigstore bundles (cosign sign --new-bundle-format, stored as an OCI 1.1 referrer) ----------------
BUNDLE_TYPES = ("application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dev.sigstore.bundle+json;version=0.3",
                "application/vnd.dev.sigstore.bundle+json;version=0.2",
                "application/vnd.dev.sigstore.bundle+json;version=0.1")
SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
IN_TOTO = "application/vnd.in-toto+json"


def _b64(text, what):
    try:
        value = base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise SignatureFormatError("bad-signature", "the bundle's %s is not base64" % what)
    if not value:
        raise SignatureFormatError("bad-signature", "the bundle has no %s" % what)
    return value


def parse_bundle(body):
    """``{certificates (DER, leaf first), payload_type, payload, signature}`` of a Sigstore bundle (v0.1-0.3)
    holding a DSSE envelope; SignatureFormatError ``unsupported`` (a message signature, not a bundle) or
    ``bad-signature`` (no signature, not base64) otherwise."""
    try:
        document = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (UnicodeDecodeError, ValueError):
        raise SignatureFormatError("bad-signature", "the Sigstore bundle is not JSON")
    if not isinstance(document, dict) or document.get("mediaType") not in BUNDLE_TYPES:
        raise SignatureFormatError("unsupported", "not a Sigstore bundle (mediaType %r)"
                                   % (document.get("mediaType") if isinstance(document, dict) else None))
    envelope = document.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise SignatureFormatError("unsupported", "a Sigstore bundle without a DSSE envelope (a message signature "
                                   "of a blob, not what cosign sign writes for an image)")
    material = document.get("verificationMaterial") if isinstance(document.get("verificationMaterial"), dict) else {}
    raws = [((material.get("certificate") or {}).get("rawBytes"))] if material.get("certificate") else [
        entry.get("rawBytes") for entry in ((material.get("x509CertificateChain") or {}).get("certificates") or [])
        if isinstance(entry, dict)]
    signatures = [entry for entry in envelope.get("signatures") or [] if isinstance(entry, dict)]
    return {"certificates": [_b64(raw, "certificate") for raw in raws if raw],
            "payload_type": envelope.get("payloadType"),
            "payload": _b64(envelope.get("payload"), "DSSE payload"),
            "signature": _b64(signatures[0].get("sig") if signatures else None, "DSSE signature")}


def pae(payload_type, payload):
    """DSSE's pre-authentication encoding: the bytes a DSSE signature is made over."""
    kind = (payload_type or "").encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def check_statement(payload_type, payload, subject_digest):
    """The signed digest of cosign's in-toto statement when it names ``subject_digest``; SignatureFormatError
    ``unsupported`` (an attestation, not a signature), ``bad-payload`` or ``other-digest`` otherwise."""
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SignatureFormatError("bad-payload", "the bundle's signed payload is not JSON")
    if payload_type != IN_TOTO or not isinstance(document, dict) or not isinstance(document.get("subject"), list):
        raise SignatureFormatError("bad-payload", "the bundle's signed payload is not an in-toto statement")
    if document.get("predicateType") != SIGN_PREDICATE:
        raise SignatureFormatError("unsupported", "a Sigstore bundle of an attestation (predicate %s), not an image "
                                   "signature (%s)" % (document.get("predicateType"), SIGN_PREDICATE))
    algorithm, _sep, hex_digest = subject_digest.partition(":")
    named = ["%s:%s" % (algorithm, (entry.get("digest") or {}).get(algorithm)) for entry in document["subject"]
             if isinstance(entry, dict) and isinstance(entry.get("digest"), dict)]
    if subject_digest not in named:
        raise SignatureFormatError("other-digest", "the bundle's statement is signed for %s, not %s"
                                   % (", ".join(named) or "no digest", subject_digest))
    return subject_digest

# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Public keys and cosign signature verification for docker_manifest_info's ``signature_keys``.

Keys are PEM public keys, given inline or as file paths (a file may hold several): ECDSA on P-256,
P-384 or P-521, RSA of 2048 bits or more, Ed25519 - what cosign signs with. Each key is known by its
key id, ``sha256:`` and the hex SHA-256 of its DER SubjectPublicKeyInfo (the same for the same key
however it was written). Every bad value is one OptionError naming the option entry and what is
allowed, before any request; a private key or the text of a value is never repeated in it.

Verification is cosign's, offline (as ``cosign verify --key`` with the transparency log ignored):
ECDSA signatures are ASN.1 DER over the payload hashed with SHA-256 (or the curve's own hash: SHA-384
on P-384, SHA-512 on P-521), RSA signatures PKCS#1 v1.5 or PSS over SHA-256 (SHA-384, SHA-512),
Ed25519 signatures over the payload itself. Uses ``cryptography`` (a dependency of ansible-core).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported by parse_signature_keys
    HAS_CRYPTOGRAPHY = False

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.cosign import (
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SignatureFormatError,
    check_claims,
    check_statement,
    decode_signature,
    parse_bundle,
    pae,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._sigstore import load_certificates

ALLOWED = ("PEM public keys (-----BEGIN PUBLIC KEY-----) of type ECDSA P-256, P-384 or P-521, RSA (2048 bits or "
           "more) or Ed25519, inline or as the path of a file holding them")
MAX_KEY_FILE = 256 * 1024
MIN_RSA_BITS = 2048
_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)-----END \1-----", re.S)
_CURVES = {"secp256r1": ("ecdsa-p256", "SHA256"), "secp384r1": ("ecdsa-p384", "SHA384"),
           "secp521r1": ("ecdsa-p521", "SHA512")}


class PublicKey:
    """One verification key: ``key_id``, ``type`` (ecdsa-p256, rsa-3072, ed25519...), ``source``."""

    def __init__(self, key, key_type, source):
        self.key = key
        self.type = key_type
        self.source = source
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.key_id = "sha256:" + hashlib.sha256(der).hexdigest()

    def fact(self):
        return {"key_id": self.key_id, "type": self.type, "source": self.source}

    def well_formed(self, signature):
        """Whether ``signature`` has the shape this key's signatures have (DER for ECDSA, the right length)."""
        if self.type.startswith("ecdsa"):
            try:
                decode_dss_signature(signature)
            except ValueError:
                return False
            return True
        if self.type == "ed25519":
            return len(signature) == 64
        return len(signature) == (self.key.key_size + 7) // 8

    def verifies(self, signature, payload):
        """Whether ``signature`` is this key's signature of ``payload`` (any of cosign's hash and padding choices)."""
        for attempt in self._attempts():
            try:
                attempt(signature, payload)
                return True
            except (InvalidSignature, ValueError, UnsupportedAlgorithm):
                continue
        return False

    def _attempts(self):
        key = self.key
        if self.type == "ed25519":
            return [key.verify]
        if self.type.startswith("ecdsa"):
            own = getattr(hashes, _CURVES[key.curve.name][1])
            algorithms = [hashes.SHA256] + ([own] if own is not hashes.SHA256 else [])
            return [(lambda s, p, a=a: key.verify(s, p, ec.ECDSA(a()))) for a in algorithms]
        attempts = []
        for algorithm in (hashes.SHA256, hashes.SHA384, hashes.SHA512):
            attempts.append(lambda s, p, a=algorithm: key.verify(s, p, padding.PKCS1v15(), a()))
            for salt in (padding.PSS.AUTO, padding.PSS.DIGEST_LENGTH):
                attempts.append(lambda s, p, a=algorithm, n=salt: key.verify(
                    s, p, padding.PSS(mgf=padding.MGF1(a()), salt_length=n), a()))
        return attempts


def _describe(text):
    """How an inline value is named in an error: its first line only (never a key's body)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return "inline text starting %r" % first[:40]


def _load_block(label, body, where):
    if "PRIVATE KEY" in label:
        raise OptionError("%s is a private key (%s); give the public key only (cosign public-key --key ...). "
                          "Allowed: %s" % (where, label, ALLOWED))
    if label not in ("PUBLIC KEY", "RSA PUBLIC KEY"):
        raise OptionError("%s is a PEM %s, not a public key. Allowed: %s" % (where, label, ALLOWED))
    text = "-----BEGIN %s-----\n%s-----END %s-----\n" % (label, body, label)
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError):
        raise OptionError("%s is not a readable PEM public key (its base64 or DER is broken). Allowed: %s"
                          % (where, ALLOWED))
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVES:
        return key, _CURVES[key.curve.name][0]
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise OptionError("%s is an RSA key of %d bits; cosign needs %d or more" % (where, key.key_size,
                                                                                        MIN_RSA_BITS))
        return key, "rsa-%d" % key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key, "ed25519"
    kind = ("an ECDSA key on curve %s" % key.curve.name if isinstance(key, ec.EllipticCurvePublicKey)
            else "a key of type %s" % type(key).__name__.lstrip("_").replace("PublicKey", ""))
    raise OptionError("%s is %s, which cosign does not sign with. Allowed: %s" % (where, kind, ALLOWED))


def _read_file(path, where, kind="a PEM public key"):
    expanded = os.path.expanduser(path)
    if not os.path.isfile(expanded):
        raise OptionError("%s: no such file %r (give %s, or the path of a file holding one)"
                          % (where, path, kind))
    try:
        with open(expanded, "rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except (IOError, OSError) as exc:
        raise OptionError("%s: cannot read %r: %s" % (where, path, exc.strerror or exc))
    if len(data) > MAX_KEY_FILE:
        raise OptionError("%s: %r is larger than %d bytes; it is no key file" % (where, path, MAX_KEY_FILE))
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise OptionError("%s: %r is not a PEM file (binary content). Allowed: %s" % (where, path, ALLOWED))


def parse_signature_keys(values, option="signature_keys"):
    """The PublicKey list of the option (duplicates once); [] for none; OptionError for any bad entry."""
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, list):
        values = [values]
    keys, seen = [], set()
    for index, value in enumerate(values):
        where = "%s[%d]" % (option, index)
        if not isinstance(value, str) or not value.strip():
            raise OptionError("%s must be a PEM public key or the path of one, got %s" % (where, type(value).__name__
                                                                                          if value else repr(value)))
        if not HAS_CRYPTOGRAPHY:
            raise OptionError("%s needs the Python library 'cryptography' on the host that runs the module "
                              "(pip install cryptography)" % option)
        inline = "-----BEGIN" in value
        text = value if inline else _read_file(value.strip(), where)
        described = "%s (%s)" % (where, _describe(value) if inline else "file %r" % value.strip())
        blocks = _PEM_RE.findall(text)
        if not blocks:
            raise OptionError("%s is not PEM (no -----BEGIN PUBLIC KEY----- block). Allowed: %s" % (described, ALLOWED))
        source = where if inline else value.strip()
        for label, body in blocks:
            key, key_type = _load_block(label, body, described)
            found = PublicKey(key, key_type, source)
            if found.key_id not in seen:
                seen.add(found.key_id)
                keys.append(found)
    return keys


def _certificate_key(cert):
    """The PublicKey of a signing certificate; SignatureFormatError when cosign could not have signed with it."""
    try:
        public = cert.public_key()
        return PublicKey(public, _load_type(public, "the certificate"), "certificate")
    except (OptionError, ValueError, UnsupportedAlgorithm):
        raise SignatureFormatError("untrusted-certificate", "the certificate's key is of a type cosign does not "
                                   "sign with")


def _signer(keys, policy, signature, data, certificates):
    """``(key_id, identity, issuer)`` of whoever verifies ``signature`` over ``data``; SignatureFormatError.

    The given keys first; then, with a policy, the attached certificate (its key must verify the signature,
    then the certificate the policy: ``_sigstore.CertificatePolicy.check``).
    """
    signer = next((key for key in keys if key.verifies(signature, data)), None)
    if signer is not None:
        return signer.key_id, None, None
    if policy is not None and certificates:
        leaf = _certificate_key(certificates[0])
        if not leaf.verifies(signature, data):
            raise SignatureFormatError("other-key", "the signature does not verify with the key of its certificate "
                                       "(altered, or the certificate is another key's)")
        identity, issuer = policy.check(certificates[0], certificates[1:])
        return None, identity, issuer
    if keys and not any(key.well_formed(signature) for key in keys):
        raise SignatureFormatError("bad-signature", "the signature (%d bytes) has the shape of no given "
                                   "key's signatures (%s): truncated, not a signature, or made with a key "
                                   "of another type" % (len(signature), ", ".join(sorted(set(k.type for k in keys)))))
    if not keys:
        raise SignatureFormatError("other-key", "no certificate is attached (a signature made with a key): give its "
                                   "public key in signature_keys")
    raise SignatureFormatError("other-key", "none of the %d given key(s) verifies the signature (made with "
                               "another key, or altered)%s" % (len(keys), "; it carries a certificate (keyless), "
                                                               "not checked without certificate_identity"
                                                               if certificates and policy is None else ""))


def _empty_fact():
    return {"verified": False, "key_id": None, "identity": None, "issuer": None, "reason": None, "message": None}


def verify_layer(keys, signature_layer, payload, subject_digest, registry, repository, policy=None):
    """The fact of one simple-signing layer: ``verified``, ``key_id`` or ``identity`` and ``issuer`` (a
    certificate, with ``policy``), ``reason``, ``message`` and the claims.

    The signature is checked first, then the payload's claims (a payload proves nothing until a key
    verifies it): ``bad-signature``, ``other-key``, the certificate's reasons (``_sigstore``),
    ``bad-payload``, ``other-digest``, ``other-repository``.
    """
    fact = _empty_fact()
    try:
        signature = decode_signature(signature_layer)
        annotations = signature_layer.get("annotations") or {}
        certificates = []
        if policy is not None and annotations.get(CERTIFICATE_ANNOTATION):
            certificates = load_certificates(annotations[CERTIFICATE_ANNOTATION])[:1]
            if annotations.get(CHAIN_ANNOTATION):
                certificates += load_certificates(annotations[CHAIN_ANNOTATION])
        elif annotations.get(CERTIFICATE_ANNOTATION):
            certificates = [None]
        fact["key_id"], fact["identity"], fact["issuer"] = _signer(keys, policy, signature, payload, certificates)
        fact["signed_digest"], fact["docker_reference"] = check_claims(payload, subject_digest, registry, repository)
        fact["verified"] = True
    except SignatureFormatError as exc:
        fact["reason"], fact["message"] = exc.reason, str(exc)
    return fact


def verify_bundle(keys, body, subject_digest, policy=None):
    """The fact of one Sigstore bundle layer (cosign sign --new-bundle-format): its DSSE signature over
    cosign's in-toto statement, by a given key or by a certificate ``policy`` accepts, naming the digest.
    A bundle names no repository (``docker_reference`` is None, nothing to compare)."""
    fact = _empty_fact()
    try:
        bundle = parse_bundle(body)
        check_statement(bundle["payload_type"], bundle["payload"], subject_digest)
        try:
            certificates = [x509.load_der_x509_certificate(der) for der in bundle["certificates"]]
        except ValueError:
            raise SignatureFormatError("untrusted-certificate", "the bundle's certificate is not DER")
        data = pae(bundle["payload_type"], bundle["payload"])
        fact["key_id"], fact["identity"], fact["issuer"] = _signer(keys, policy, bundle["signature"], data,
                                                                   certificates)
        fact["signed_digest"], fact["docker_reference"] = subject_digest, None
        fact["verified"] = True
    except SignatureFormatError as exc:
        fact["reason"], fact["message"] = exc.reason, str(exc)
    return fact


# -- signing (the building block of signing on publish) --------------------------------------------
def load_signing_key(text, passphrase=None, option="signing_key"):
    """A private key (PEM text: PKCS#8, SEC1 EC or PKCS#1 RSA, encrypted or not) cosign can sign with.

    OptionError for anything else, naming ``option`` and never the key's text or the passphrase: not
    PEM, cosign's own encrypted format (export it as PKCS#8 first), a wrong or missing passphrase, a
    key type cosign does not sign with.
    """
    if not HAS_CRYPTOGRAPHY:
        raise OptionError("%s needs the Python library 'cryptography' on the host that runs the module "
                          "(pip install cryptography)" % option)
    blocks = _PEM_RE.findall(text or "") if isinstance(text, str) else []
    if not blocks:
        raise OptionError("%s is not a PEM private key (no -----BEGIN PRIVATE KEY----- block)" % option)
    label, body = blocks[0]
    if "SIGSTORE" in label or "COSIGN" in label:
        raise OptionError("%s is in cosign's own encrypted format (%s), which only cosign reads; give a PEM "
                          "PKCS#8 private key" % (option, label))
    if "PRIVATE KEY" not in label:
        raise OptionError("%s is a PEM %s, not a private key" % (option, label))
    pem_text = "-----BEGIN %s-----\n%s-----END %s-----\n" % (label, body, label)
    secret = passphrase.encode("utf-8") if passphrase else None
    try:
        key = serialization.load_pem_private_key(pem_text.encode("ascii"), password=secret)
    except TypeError:
        if secret is None:
            raise OptionError("%s is encrypted: give its passphrase" % option)
        raise OptionError("%s is not encrypted: give no passphrase" % option)
    except (ValueError, UnsupportedAlgorithm):
        if secret is not None or "ENCRYPTED" in label:
            raise OptionError("%s: the passphrase does not decrypt the key (or the key is damaged)" % option)
        raise OptionError("%s is not a readable PEM private key (its base64 or DER is broken)" % option)
    public = PublicKey(key.public_key(), _load_type(key.public_key(), option), option)
    return key, public


def _load_type(public, option):
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name in _CURVES:
        return _CURVES[public.curve.name][0]
    if isinstance(public, rsa.RSAPublicKey) and public.key_size >= MIN_RSA_BITS:
        return "rsa-%d" % public.key_size
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    raise OptionError("%s is a key cosign does not sign with. Allowed: ECDSA P-256, P-384 or P-521, RSA (2048 bits "
                      "or more), Ed25519" % option)


def sign_payload(private_key, payload):
    """The signature cosign makes of ``payload`` with ``private_key`` (ECDSA with the curve's hash, RSA PKCS#1
    v1.5 SHA-256, Ed25519), as the bytes cosign puts in base64 in the signature annotation."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(payload, ec.ECDSA(getattr(hashes, _CURVES[private_key.curve.name][1])()))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    return private_key.sign(payload)

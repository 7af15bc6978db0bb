# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sigstore certificates and bundles, verified offline against an identity, an issuer and a trusted root.

``certificate_identity``, ``certificate_oidc_issuer`` and ``trusted_root`` (named as cosign verify's
flags) make one CertificatePolicy. A signing certificate counts when, as ``cosign verify
--certificate-identity ... --certificate-oidc-issuer ... --insecure-ignore-tlog --insecure-ignore-sct``
checks it:

1. it chains to a root of the trusted root through its intermediates (from the trusted root or the
   signature's own chain), each issuer a CA whose signature over the certificate verifies and which was
   valid when the certificate was issued (its notBefore, as cosign checks the chain); a CA of Sigstore's
   ``trusted_root.json`` also only within its ``validFor`` window; and the certificate allows code signing;
2. one of its subjectAltNames (email or URI) is the identity, and its Fulcio OIDC issuer extension
   (1.3.6.1.4.1.57264.1.8, or the deprecated 1.3.6.1.4.1.57264.1.1) is the issuer, both exactly;
3. it is valid now: without a verified transparency-log entry or timestamp there is no trusted signing
   time, so the certificate's window is compared with the time of verification (cosign does the same).

Not checked (offline): transparency-log inclusion (Rekor entries in a bundle are not read), SCTs,
timestamps, revocation. Uses ``cryptography`` only. Every failure is a SignatureFormatError whose
reason is ``untrusted-certificate``, ``other-identity``, ``other-issuer`` or ``expired-certificate``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import json

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
    HAS_X509 = True
except ImportError:  # pragma: no cover - reported by parse_certificate_options
    HAS_X509 = False

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.cosign import SignatureFormatError

ISSUER_OID = "1.3.6.1.4.1.57264.1.8"          # Fulcio OIDC issuer (V2, DER UTF8String)
ISSUER_OID_V1 = "1.3.6.1.4.1.57264.1.1"       # Fulcio OIDC issuer (deprecated, raw string)
OPTIONS = ("certificate_identity", "certificate_oidc_issuer", "trusted_root")
ALLOWED_ROOT = ("Sigstore's trusted_root.json (certificateAuthorities[].certChain) or a PEM bundle of CA "
                "certificates (roots; intermediates beside them), as a path or inline text")
MAX_ROOT_FILE = 4 * 1024 * 1024
MAX_CHAIN = 8


def _utc(name, cert):
    value = getattr(cert, name + "_utc", None)
    return value if value is not None else getattr(cert, name).replace(tzinfo=_UTC)


_UTC = datetime.timezone.utc if hasattr(datetime, "timezone") else None


def _when(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def issued_by(cert, issuer):
    """Whether ``issuer``'s key verifies ``cert``'s signature (ECDSA, RSA PKCS#1 v1.5 or PSS, Ed25519)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        if hasattr(cert, "verify_directly_issued_by"):
            cert.verify_directly_issued_by(issuer)
            return True
        key = issuer.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        else:
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _is_ca(cert):
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def identity_of(cert):
    """``(subjectAltNames, issuer)`` of a Fulcio certificate: emails and URIs, the OIDC issuer (or None)."""
    names = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.RFC822Name) + san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        pass
    issuer = None
    for oid, der in ((ISSUER_OID, True), (ISSUER_OID_V1, False)):
        try:
            raw = cert.extensions.get_extension_for_oid(ObjectIdentifier(oid)).value.value
        except x509.ExtensionNotFound:
            continue
        if der and len(raw) >= 2 and raw[0] == 0x0C:   # UTF8String, short or long length form
            length, start = raw[1], 2
            if length & 0x80:
                count = length & 0x7F
                length, start = int.from_bytes(raw[2:2 + count], "big"), 2 + count
            raw = raw[start:start + length]
        try:
            issuer = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        break
    return names, issuer


class CertificatePolicy:
    """The identity, issuer and trusted root signing certificates are checked against."""

    def __init__(self, identity, issuer, roots, intermediates, source):
        self.identity, self.issuer, self.source = identity, issuer, source
        self.roots = roots                  # [(certificate, (start, end) or None)]
        self.intermediates = intermediates  # [certificate]

    def fact(self):
        return {"certificate_identity": self.identity, "certificate_oidc_issuer": self.issuer,
                "trusted_root": self.source, "roots": len(self.roots), "intermediates": len(self.intermediates)}

    def signer(self):
        return "%s (%s)" % (self.identity, self.issuer)

    def check(self, leaf, chain=(), now=None):
        """``(identity, issuer)`` when ``leaf`` counts; SignatureFormatError with the reason otherwise."""
        self._chain(leaf, list(chain))
        names, issuer = identity_of(leaf)
        if self.identity not in names:
            raise SignatureFormatError("other-identity", "the certificate is for %s, not %s"
                                       % (", ".join(names) or "no email or URI identity", self.identity))
        if issuer != self.issuer:
            raise SignatureFormatError("other-issuer", "the certificate's OIDC issuer is %s, not %s"
                                       % (issuer or "missing (no Fulcio issuer extension)", self.issuer))
        now = now or datetime.datetime.now(_UTC)
        start, end = _utc("not_valid_before", leaf), _utc("not_valid_after", leaf)
        if not start <= now <= end:
            raise SignatureFormatError("expired-certificate", "the certificate is valid from %s to %s, not now (%s): "
                                       "checked at the time of verification, as no signing time is verified "
                                       "offline (no transparency log, no timestamp)"
                                       % (_when(start), _when(end), _when(now)))
        return self.identity, issuer

    def _chain(self, leaf, extra):
        try:
            usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            if ExtendedKeyUsageOID.CODE_SIGNING not in usage:
                raise SignatureFormatError("untrusted-certificate", "the certificate does not allow code signing "
                                           "(extended key usage)")
        except x509.ExtensionNotFound:
            raise SignatureFormatError("untrusted-certificate", "the certificate has no extended key usage "
                                       "(code signing)")
        issued = _utc("not_valid_before", leaf)
        candidates = [cert for cert in self.intermediates + extra if _is_ca(cert)]
        current = leaf
        for _depth in range(MAX_CHAIN):
            for root, window in self.roots:
                if issued_by(current, root) and self._valid(root, issued, window):
                    return
            parent = next((cert for cert in candidates if cert != current and issued_by(current, cert)
                           and self._valid(cert, issued)), None)
            if parent is None:
                break
            current = parent
        raise SignatureFormatError("untrusted-certificate", "the certificate (issued by %s) does not chain to a "
                                   "root of %s valid at its issuance (%s)"
                                   % (current.issuer.rfc4514_string() or "an empty name", self.source,
                                      _when(issued)))

    @staticmethod
    def _valid(cert, when, window=None):
        if not _utc("not_valid_before", cert) <= when <= _utc("not_valid_after", cert):
            return False
        return window is None or ((window[0] is None or window[0] <= when) and (window[1] is None or when <= window[1]))


# -- options ---------------------------------------------------------------------------------------
def _timestamp(text):
    if not text:
        return None
    return datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_UTC)


def _der(text, where):
    try:
        return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, TypeError):
        raise OptionError("%s: a certChain certificate's rawBytes is not a base64 DER certificate" % where)


def load_trusted_root(text, where):
    """``(roots, intermediates)`` of a trusted_root.json or a PEM bundle; OptionError otherwise."""
    if text.lstrip().startswith("{"):
        try:
            authorities = json.loads(text)["certificateAuthorities"]
            if not isinstance(authorities, list):
                raise TypeError("certificateAuthorities is not a list")
        except (ValueError, KeyError, TypeError):
            raise OptionError("%s is JSON but not a Sigstore trusted root (no certificateAuthorities list). "
                              "Allowed: %s" % (where, ALLOWED_ROOT))
        roots, intermediates = [], []
        for authority in authorities:
            chain = [_der((entry or {}).get("rawBytes"), where)
                     for entry in ((authority or {}).get("certChain") or {}).get("certificates") or []]
            if not chain:
                continue
            valid = (authority or {}).get("validFor") or {}
            try:
                window = (_timestamp(valid.get("start")), _timestamp(valid.get("end")))
            except (ValueError, TypeError, AttributeError):
                raise OptionError("%s: a validFor time is not RFC 3339 (%r)" % (where, valid))
            roots.append((chain[-1], window))
            intermediates.extend(chain[:-1])
    elif "-----BEGIN CERTIFICATE-----" in text:
        try:
            certs = [x509.load_pem_x509_certificate(("-----BEGIN CERTIFICATE-----" + part).encode("ascii"))
                     for part in text.split("-----BEGIN CERTIFICATE-----")[1:]]
        except (ValueError, UnicodeEncodeError):
            raise OptionError("%s holds a PEM certificate that cannot be read. Allowed: %s" % (where, ALLOWED_ROOT))
        roots = [(cert, None) for cert in certs if cert.issuer == cert.subject]
        intermediates = [cert for cert in certs if cert.issuer != cert.subject]
    else:
        raise OptionError("%s is neither JSON nor PEM certificates. Allowed: %s" % (where, ALLOWED_ROOT))
    if not roots:
        raise OptionError("%s has no root certificate (self-signed CA). Allowed: %s" % (where, ALLOWED_ROOT))
    return roots, intermediates


def parse_certificate_options(params, read_file):
    """The CertificatePolicy of the three options; None when none is given; OptionError when one is missing."""
    given = [name for name in OPTIONS if params.get(name)]
    if not given:
        return None
    missing = [name for name in OPTIONS if name not in given]
    if missing:
        raise OptionError("%s given without %s: a certificate is verified against an identity, its OIDC issuer and "
                          "a trusted root, all three (as cosign verify --certificate-identity "
                          "--certificate-oidc-issuer --trusted-root)" % (", ".join(given), ", ".join(missing)))
    if not HAS_X509:
        raise OptionError("certificate_identity needs the Python library 'cryptography' on the host that runs "
                          "the module (pip install cryptography)")
    for name in OPTIONS[:2]:
        if not isinstance(params[name], str) or not params[name].strip():
            raise OptionError("%s must be a non-empty string, got %r" % (name, params[name]))
    text = params["trusted_root"]
    inline = "-----BEGIN" in text or text.lstrip().startswith("{")
    source = "trusted_root" if inline else text.strip()
    if not inline:
        text = read_file(text.strip(), "trusted_root", kind="a trusted root")
    roots, intermediates = load_trusted_root(text, "trusted_root (%s)" % ("inline" if inline else source))
    return CertificatePolicy(params["certificate_identity"].strip(), params["certificate_oidc_issuer"].strip(),
                             roots, intermediates, source)


def load_certificates(text):
    """The certificates of a PEM annotation value (``dev.sigstore.cosign/certificate`` or ``.../chain``)."""
    if not isinstance(text, str) or "-----BEGIN CERTIFICATE-----" not in text:
        raise SignatureFormatError("untrusted-certificate", "the certificate annotation is not PEM")
    try:
        return [x509.load_pem_x509_certificate(("-----BEGIN CERTIFICATE-----" + part).encode("ascii"))
                for part in text.split("-----BEGIN CERTIFICATE-----")[1:]]
    except (ValueError, UnicodeEncodeError):
        raise SignatureFormatError("untrusted-certificate", "the certificate annotation cannot be read as PEM")


def public_key_of(cert):
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

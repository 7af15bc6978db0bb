"""Sigstore certificates and bundles (_sigstore, _signatures.verify_bundle): the trusted root in both forms, each
reason a certificate does not count, every bad option, and bundles signed with a key. Certificates are made here
with `cryptography` as Fulcio issues them (the real cosign judge is tests/integration/test_cosign_certificates.py)."""
import base64
import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.cosign import SignatureFormatError, pae
from ansible_collections.archfleet.multiarch.plugins.module_utils._signatures import (
    _read_file,
    parse_signature_keys,
    verify_bundle,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._sigstore import (
    identity_of,
    load_trusted_root,
    parse_certificate_options,
)

NOW = datetime.datetime.now(datetime.timezone.utc)
HOUR = datetime.timedelta(hours=1)
IDENTITY, ISSUER = "release@example.com", "https://issuer.example"
SUBJECT = "sha256:" + "a" * 64


def name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def ca(common_name, parent=None, valid=(NOW - 24 * HOUR, NOW + 24 * HOUR), is_ca=True):
    key = ec.generate_private_key(ec.SECP384R1())
    signer_key, signer = parent or (key, None)
    cert = (x509.CertificateBuilder().subject_name(name(common_name))
            .issuer_name(signer.subject if signer else name(common_name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(valid[0]).not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .sign(signer_key, hashes.SHA384()))
    return key, cert


def leaf(parent, identity=IDENTITY, issuer=ISSUER, valid=(NOW - HOUR, NOW + HOUR), code_signing=True):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(parent[1].subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(valid[0]).not_valid_after(valid[1])
               .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity)]), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING if code_signing
                                                     else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if issuer:
        data = issuer.encode()
        builder = builder.add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
                                                                   bytes([0x0C, len(data)]) + data), critical=False)
    return key, builder.sign(parent[0], hashes.SHA256())


def pem(*certs):
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def der64(cert):
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


ROOT = ca("root")
INTER = ca("intermediate", ROOT)


def policy(trusted=None, identity=IDENTITY, issuer=ISSUER):
    return parse_certificate_options({"certificate_identity": identity, "certificate_oidc_issuer": issuer,
                                      "trusted_root": trusted or pem(ROOT[1], INTER[1])}, _read_file)


def reason(check, *args):
    with pytest.raises(SignatureFormatError) as caught:
        check(*args)
    return caught.value.reason, str(caught.value)


def test_a_fulcio_certificate_counts_and_each_bad_one_says_why():
    good = policy()
    assert good.check(leaf(INTER)[1]) == (IDENTITY, ISSUER)
    assert reason(good.check, leaf(INTER, "mallory@example.com")[1]) == (
        "other-identity", "the certificate is for mallory@example.com, not %s" % IDENTITY)
    assert reason(good.check, leaf(INTER, issuer="https://other")[1])[0] == "other-issuer"
    assert "missing (no Fulcio issuer extension)" in reason(good.check, leaf(INTER, issuer=None)[1])[1]
    expired = reason(good.check, leaf(INTER, valid=(NOW - 3 * HOUR, NOW - 2 * HOUR))[1])
    assert expired[0] == "expired-certificate" and "no signing time is verified offline" in expired[1]
    assert reason(good.check, leaf(ca("stranger"))[1])[0] == "untrusted-certificate"
    assert "code signing" in reason(good.check, leaf(INTER, code_signing=False)[1])[1]
    # An intermediate that is no CA, or a CA not valid when the certificate was issued, breaks the chain.
    not_ca = ca("not a ca", ROOT, is_ca=False)
    assert reason(policy(pem(ROOT[1], not_ca[1])).check, leaf(not_ca)[1])[0] == "untrusted-certificate"
    late = ca("late", ROOT, valid=(NOW + HOUR, NOW + 2 * HOUR))
    assert reason(policy(pem(ROOT[1], late[1])).check, leaf(late)[1])[0] == "untrusted-certificate"
    # The signature's own chain supplies the intermediate (the legacy chain annotation); a root in that chain
    # is not trusted for being there.
    only_root = policy(pem(ROOT[1]))
    assert reason(only_root.check, leaf(INTER)[1])[0] == "untrusted-certificate"
    assert only_root.check(leaf(INTER)[1], [INTER[1], ROOT[1]]) == (IDENTITY, ISSUER)
    stranger_root = ca("stranger root")
    stranger = ca("stranger", stranger_root)
    assert reason(only_root.check, leaf(stranger)[1], [stranger[1], stranger_root[1]])[0] == "untrusted-certificate"


def test_trusted_root_json_with_its_validity_window():
    document = {"certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": der64(INTER[1])},
                                                                           {"rawBytes": der64(ROOT[1])}]},
                                            "validFor": {"start": (NOW - 2 * HOUR).strftime("%Y-%m-%dT%H:%M:%SZ")}}]}
    roots, intermediates = load_trusted_root(json.dumps(document), "t")
    assert [r[0] for r in roots] == [ROOT[1]] and intermediates == [INTER[1]]
    assert policy(json.dumps(document)).check(leaf(INTER)[1]) == (IDENTITY, ISSUER)
    # A certificate issued before the CA's validFor start does not chain.
    early = leaf(INTER, valid=(NOW - 3 * HOUR, NOW + HOUR))[1]
    assert reason(policy(json.dumps(document)).check, early)[0] == "untrusted-certificate"


@pytest.mark.parametrize("params,expected", [
    ({"certificate_identity": IDENTITY}, "certificate_identity given without certificate_oidc_issuer, trusted_root"),
    ({"certificate_identity": " ", "certificate_oidc_issuer": ISSUER, "trusted_root": "{}"},
     "certificate_identity must be a non-empty string"),
    ({"certificate_identity": IDENTITY, "certificate_oidc_issuer": ISSUER, "trusted_root": "/nonexistent/root.json"},
     "trusted_root: no such file '/nonexistent/root.json'"),
    ({"certificate_identity": IDENTITY, "certificate_oidc_issuer": ISSUER, "trusted_root": '{"tlogs": []}'},
     "is JSON but not a Sigstore trusted root"),
    ({"certificate_identity": IDENTITY, "certificate_oidc_issuer": ISSUER, "trusted_root": pem(INTER[1])},
     "has no root certificate"),
    ({"certificate_identity": IDENTITY, "certificate_oidc_issuer": ISSUER,
      "trusted_root": '{"certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": "!"}]}}]}'},
     "rawBytes is not a base64 DER certificate"),
])
def test_bad_certificate_options_are_one_clear_error(params, expected):
    with pytest.raises(OptionError) as caught:
        parse_certificate_options(params, _read_file)
    assert expected in str(caught.value)


def test_no_certificate_options_is_no_policy():
    assert parse_certificate_options({}, _read_file) is None


def test_identity_of_reads_both_issuer_extensions():
    assert identity_of(leaf(INTER)[1]) == ([IDENTITY], ISSUER)


def statement(digest=SUBJECT, predicate="https://sigstore.dev/cosign/sign/v1"):
    return json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": predicate,
                       "subject": [{"digest": {"sha256": digest.split(":")[1]}}]}).encode()


def bundle(key, data, material, sign=None, payload_type="application/vnd.in-toto+json"):
    signature = sign(data) if sign else key.sign(pae(payload_type, data), ec.ECDSA(hashes.SHA256()))
    return json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                       "verificationMaterial": material,
                       "dsseEnvelope": {"payload": base64.b64encode(data).decode(), "payloadType": payload_type,
                                        "signatures": [{"sig": base64.b64encode(signature).decode()}]}}).encode()


def test_bundles_signed_with_a_key_or_a_certificate_and_their_tampered_variants():
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    keys = parse_signature_keys([public.decode()])
    by_key = verify_bundle(keys, bundle(key, statement(), {"publicKey": {"hint": "x"}}), SUBJECT)
    assert (by_key["verified"], by_key["key_id"], by_key["docker_reference"]) == (True, keys[0].key_id, None)
    signer = leaf(INTER)
    material = {"certificate": {"rawBytes": der64(signer[1])}}
    by_cert = verify_bundle([], bundle(signer[0], statement(), material), SUBJECT, policy())
    assert (by_cert["verified"], by_cert["identity"], by_cert["issuer"]) == (True, IDENTITY, ISSUER)

    def outcome(body, with_keys=(), with_policy=None):
        fact = verify_bundle(list(with_keys), body, SUBJECT, with_policy)
        return fact["reason"], fact["message"]

    assert outcome(bundle(signer[0], statement("sha256:" + "b" * 64), material), with_policy=policy())[0] == \
        "other-digest"
    assert outcome(bundle(key, statement(), {}), with_keys=parse_signature_keys([
        ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()]))[0] == "other-key"
    assert outcome(bundle(signer[0], statement(predicate="https://slsa.dev/provenance/v1"), material),
                   with_policy=policy())[0] == "unsupported"
    assert outcome(bundle(signer[0], b"not json", material), with_policy=policy())[0] == "bad-payload"
    assert outcome(b"{", with_policy=policy()) == ("bad-signature", "the Sigstore bundle is not JSON")
    broken = json.loads(bundle(signer[0], statement(), material))
    broken["dsseEnvelope"]["signatures"][0]["sig"] = "%%%"
    assert outcome(json.dumps(broken).encode(), with_policy=policy()) == (
        "bad-signature", "the bundle's DSSE signature is not base64")
    # Signed by another key than its certificate's: the certificate vouches for nothing.
    assert outcome(bundle(key, statement(), material), with_policy=policy())[0] == "other-key"
    message = json.loads(bundle(signer[0], statement(), material))
    message.pop("dsseEnvelope")
    message["messageSignature"] = {}
    assert outcome(json.dumps(message).encode(), with_policy=policy())[0] == "unsupported"
    assert outcome(bundle(signer[0], statement(), {"certificate": {"rawBytes": der64(leaf(ca("x"))[1])}}),
                   with_policy=policy())[0] == "other-key"


def test_legacy_certificate_annotations_on_a_simple_signing_layer():
    from ansible_collections.archfleet.multiarch.plugins.module_utils._oci import cosign
    from ansible_collections.archfleet.multiarch.plugins.module_utils._signatures import verify_layer
    signer = leaf(INTER)
    data = cosign.simple_signing_payload(SUBJECT, "r.example/team/app")
    layer = cosign.signature_layer("sha256:" + "c" * 64, len(data), signer[0].sign(data, ec.ECDSA(hashes.SHA256())))
    layer["annotations"][cosign.CERTIFICATE_ANNOTATION] = pem(signer[1])
    layer["annotations"][cosign.CHAIN_ANNOTATION] = pem(INTER[1], ROOT[1])
    fact = verify_layer([], layer, data, SUBJECT, "r.example", "team/app", policy(pem(ROOT[1])))
    assert (fact["verified"], fact["identity"], fact["issuer"], fact["key_id"]) == (True, IDENTITY, ISSUER, None)
    # Without the chain annotation the root alone does not reach the certificate.
    del layer["annotations"][cosign.CHAIN_ANNOTATION]
    assert verify_layer([], layer, data, SUBJECT, "r.example", "team/app", policy(pem(ROOT[1])))["reason"] == \
        "untrusted-certificate"
    # Claims are still checked after the certificate.
    assert verify_layer([], layer, data, "sha256:" + "d" * 64, "r.example", "team/app", policy())["reason"] == \
        "other-digest"
    # A certificate annotation that is not PEM; no certificate at all while only a policy is given.
    layer["annotations"][cosign.CERTIFICATE_ANNOTATION] = "garbage"
    assert verify_layer([], layer, data, SUBJECT, "r.example", "team/app", policy())["reason"] == \
        "untrusted-certificate"
    del layer["annotations"][cosign.CERTIFICATE_ANNOTATION]
    fact = verify_layer([], layer, data, SUBJECT, "r.example", "team/app", policy())
    assert fact["reason"] == "other-key" and "no certificate is attached" in fact["message"]

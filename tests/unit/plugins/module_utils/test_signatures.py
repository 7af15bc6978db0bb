"""cosign signature verification: keys (every type, every bad input), each failure reason, and the facts of
docker_manifest_info over FakeRegistry in both storage forms (cosign .sig tag, OCI 1.1 referrer). Keys and
signatures are made here with `cryptography`, as cosign makes them."""
import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._inspect import ManifestFacts, parse_options
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci import cosign
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci import referrers as model
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    MEDIA_OCI_EMPTY,
    MEDIA_OCI_MANIFEST,
    sha256_digest,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._signatures import (
    load_signing_key,
    parse_signature_keys,
    sign_payload,
    verify_layer,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._supply_chain import parse_verification_options

from test_referrers import NoReferrersApi

SUBJECT = "sha256:" + "a" * 64
REGISTRY, REPOSITORY = "r.example:5000", "team/app"


def pem(private):
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(private):
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


# name -> (private key, sign(payload)) as cosign signs with each (sigstore's default hash per key type)
def _signers():
    p256, p384, p521 = (ec.generate_private_key(c) for c in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed = ed25519.Ed25519PrivateKey.generate()
    return {
        "ecdsa-p256": (p256, lambda data: p256.sign(data, ec.ECDSA(hashes.SHA256()))),
        "ecdsa-p384": (p384, lambda data: p384.sign(data, ec.ECDSA(hashes.SHA384()))),
        "ecdsa-p384-sha256": (p384, lambda data: p384.sign(data, ec.ECDSA(hashes.SHA256()))),
        "ecdsa-p521": (p521, lambda data: p521.sign(data, ec.ECDSA(hashes.SHA512()))),
        "rsa-pkcs1v15": (rsa_key, lambda data: rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())),
        "rsa-pss": (rsa_key, lambda data: rsa_key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                                         salt_length=padding.PSS.MAX_LENGTH),
                                                       hashes.SHA256())),
        "rsa-pss-digest-salt": (rsa_key, lambda data: rsa_key.sign(data, padding.PSS(
            mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH), hashes.SHA256())),
        "ed25519": (ed, ed.sign),
    }


SIGNERS = _signers()


def payload(digest=SUBJECT, reference=REGISTRY + "/" + REPOSITORY):
    critical = {"image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"}
    if reference is not None:
        critical["identity"] = {"docker-reference": reference}
    return json.dumps({"critical": critical, "optional": None}).encode()


def layer(data, signature):
    annotations = {} if signature is None else {cosign.SIGNATURE_ANNOTATION: signature}
    return {"mediaType": cosign.SIMPLESIGNING, "digest": sha256_digest(data), "size": len(data),
            "annotations": annotations}


def signed_layer(name, data):
    return layer(data, base64.b64encode(SIGNERS[name][1](data)).decode())


def verify(keys, a_layer, data, digest=SUBJECT, registry=REGISTRY, repository=REPOSITORY):
    return verify_layer(parse_signature_keys(keys), a_layer, data, digest, registry, repository)


# ---------------------------------------------------------------------------------------------- keys
@pytest.mark.parametrize("name", sorted(SIGNERS))
def test_every_key_type_verifies_its_signatures_as_cosign_makes_them(name):
    private = SIGNERS[name][0]
    data = payload()
    fact = verify([pem(private)], signed_layer(name, data), data)
    assert fact == {"verified": True, "key_id": key_id(private), "identity": None, "issuer": None, "reason": None,
                    "message": None,
                    "signed_digest": SUBJECT, "docker_reference": REGISTRY + "/" + REPOSITORY}


def test_keys_from_files_inline_and_several_per_file_have_stable_ids(tmp_path):
    p256, ed = SIGNERS["ecdsa-p256"][0], SIGNERS["ed25519"][0]
    ring = tmp_path / "ring.pem"
    ring.write_text(pem(p256) + "\n" + pem(ed))
    keys = parse_signature_keys([str(ring), pem(ed), pem(SIGNERS["rsa-pss"][0])])
    assert [(k.type, k.source) for k in keys] == [("ecdsa-p256", str(ring)), ("ed25519", str(ring)),
                                                  ("rsa-2048", "signature_keys[2]")]
    assert keys[0].key_id == key_id(p256) and keys[0].fact()["key_id"] == key_id(p256)
    # PKCS#1 "RSA PUBLIC KEY" is the same key, the same id.
    rsa_public = SIGNERS["rsa-pss"][0].public_key()
    pkcs1 = rsa_public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
    assert parse_signature_keys([pkcs1])[0].key_id == keys[2].key_id
    assert parse_signature_keys(None) == [] and parse_signature_keys([]) == []


def _private_pem(private):
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


@pytest.mark.parametrize("value, message", [
    (lambda tmp: str(tmp / "missing.pub"),
     "signature_keys[0]: no such file '{tmp}/missing.pub' (give a PEM public key"),
    (lambda tmp: "cosign.pub", "signature_keys[0]: no such file 'cosign.pub'"),
    (lambda tmp: _write(tmp / "text.pub", "This file is not a key.\n"),
     "signature_keys[0] (file '{tmp}/text.pub') is not PEM (no -----BEGIN PUBLIC KEY----- block). Allowed: PEM public"),
    (lambda tmp: _write(tmp / "der.pub", b"\x30\x82\x01\x22\xff"),
     "'{tmp}/der.pub' is not a PEM file (binary content)"),
    (lambda tmp: _private_pem(SIGNERS["ecdsa-p256"][0]),
     "signature_keys[0] (inline text starting '-----BEGIN PRIVATE KEY-----') is a private key (PRIVATE KEY); give "
     "the public key only"),
    (lambda tmp: "-----BEGIN CERTIFICATE-----\nbm90\n-----END CERTIFICATE-----\n",
     "is a PEM CERTIFICATE, not a public key"),
    (lambda tmp: "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
     "is not a readable PEM public key (its base64 or DER is broken)"),
    (lambda tmp: pem(dsa.generate_private_key(key_size=1024)), "is a key of type DSA, which cosign does not sign with"),
    (lambda tmp: pem(ed448.Ed448PrivateKey.generate()), "is a key of type Ed448, which cosign does not sign with"),
    (lambda tmp: pem(ec.generate_private_key(ec.SECP256K1())),
     "is an ECDSA key on curve secp256k1, which cosign does not sign with. Allowed: PEM public keys"),
    (lambda tmp: pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
     "is an RSA key of 1024 bits; cosign needs 2048 or more"),
    (lambda tmp: "", "signature_keys[0] must be a PEM public key or the path of one, got ''"),
])
def test_bad_keys_are_one_option_error_naming_the_entry_and_never_the_key(tmp_path, value, message):
    given = value(tmp_path)
    with pytest.raises(OptionError) as caught:
        parse_signature_keys([given])
    text = str(caught.value)
    assert message.format(tmp=tmp_path) in text
    if "PRIVATE" in given:
        body = given.splitlines()[1]
        assert body not in text


def _write(path, data):
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return str(path)


def test_signature_keys_need_signatures_to_be_read():
    key = pem(SIGNERS["ed25519"][0])
    base = {"images": ["app"], "require_platforms": []}
    with pytest.raises(OptionError, match="signature_keys verifies the signatures that referrers finds: set "
                                          "referrers=true"):
        parse_options(dict(base, signature_keys=[key], referrers=False))
    with pytest.raises(OptionError, match="referrers keeps only application/spdx\\+json: add application/vnd.dev"):
        parse_options(dict(base, signature_keys=[key], referrers=["application/spdx+json"]))
    assert parse_verification_options(dict(base, signature_keys=[key], referrers=[model.COSIGN_SIGNATURE]))
    assert parse_verification_options(dict(base, signature_keys=None, referrers=False)) == []


# ---------------------------------------------------------------------------------------------- reasons
def test_each_reason_a_signature_does_not_count():
    data = payload()
    p256, other = SIGNERS["ecdsa-p256"][0], SIGNERS["ecdsa-p384"][0]
    keys = [pem(p256)]

    def reason(a_layer, body=data, **kwargs):
        fact = verify(keys, a_layer, body, **kwargs)
        assert fact["verified"] is False
        return fact["reason"], fact["message"], fact["key_id"]

    good = signed_layer("ecdsa-p256", data)
    assert reason(signed_layer("ecdsa-p384", data))[:2] == (
        "other-key", "none of the 1 given key(s) verifies the signature (made with another key, or altered)")
    signature = good["annotations"][cosign.SIGNATURE_ANNOTATION]
    assert reason(layer(data, signature[:20]))[0] == "bad-signature"           # truncated: not DER any more
    assert "has the shape of no given key's signatures (ecdsa-p256)" in reason(layer(data, signature[:20]))[1]
    assert reason(layer(data, "not base64!"))[:2] == (
        "bad-signature", "the dev.cosignproject.cosign/signature annotation is not base64 (11 characters)")
    assert reason(layer(data, None))[:2] == ("bad-signature",
                                             "the layer has no dev.cosignproject.cosign/signature annotation")
    tampered = data.replace(b"cosign container", b"cosign Container")          # the payload altered after signing
    assert reason(good, tampered)[0] == "other-key"

    not_json = b"this is not JSON"
    assert reason(signed_layer("ecdsa-p256", not_json), not_json) == (
        "bad-payload", "the signed payload is not JSON", key_id(p256))
    no_claims = b'{"critical": {}}'
    assert reason(signed_layer("ecdsa-p256", no_claims), no_claims)[0] == "bad-payload"
    other_digest = payload(digest="sha256:" + "b" * 64)
    assert reason(signed_layer("ecdsa-p256", other_digest), other_digest) == (
        "other-digest", "the payload is signed for sha256:%s, not %s" % ("b" * 64, SUBJECT), key_id(p256))
    other_repository = payload(reference=REGISTRY + "/team/other")
    assert reason(signed_layer("ecdsa-p256", other_repository), other_repository) == (
        "other-repository", "the payload is signed for repository r.example:5000/team/other, not "
        "r.example:5000/team/app", key_id(p256))
    other_registry = payload(reference="mirror.example/team/app")
    assert reason(signed_layer("ecdsa-p256", other_registry), other_registry)[0] == "other-repository"
    no_identity = payload(reference=None)
    assert reason(signed_layer("ecdsa-p256", no_identity), no_identity)[0] == "bad-payload"
    # Another key given too: the signature verifies with the one that made it.
    assert verify([pem(other), pem(p256)], good, data)["key_id"] == key_id(p256)
    # An Ed25519 or RSA signature cut short is the wrong length for those keys.
    for name in ("ed25519", "rsa-pkcs1v15"):
        cut = base64.b64encode(SIGNERS[name][1](data)[:-1]).decode()
        assert verify([pem(SIGNERS[name][0])], layer(data, cut), data)["reason"] == "bad-signature"


def test_docker_reference_is_compared_as_docker_normalises_it():
    assert cosign.same_repository("index.docker.io/library/busybox", "docker.io", "library/busybox")
    assert cosign.same_repository("busybox", "docker.io", "library/busybox")
    assert cosign.same_repository("R.Example:5000/team/app:1.0", "r.example:5000", "team/app")
    assert not cosign.same_repository("r.example:5000/team/app2", "r.example:5000", "team/app")
    assert not cosign.same_repository("Not A Reference", "r.example:5000", "team/app")


# ---------------------------------------------------------------------------------------------- facts
def _signature_manifest(registry, base, layers, subject=None):
    """A cosign signature manifest: image-shaped for the .sig tag, an artifact with a subject for referrers."""
    for a_layer, data in layers:
        registry.add_blob(base, data)
    document = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "layers": [a for a, _data in layers]}
    if subject is None:
        config = b'{"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}'
        document["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json",
                              "digest": registry.add_blob(base, config), "size": len(config)}
    else:
        registry.add_blob(base, b"{}")
        document.update(artifactType=model.COSIGN_SIGNATURE, subject=subject,
                        config={"mediaType": MEDIA_OCI_EMPTY, "digest": sha256_digest(b"{}"), "size": 2})
    return document


def test_facts_verify_both_storage_forms_per_image_and_platform():
    registry = NoReferrersApi()
    base = parse_reference(REGISTRY + "/" + REPOSITORY + ":1.0")
    amd64, amd64_size = registry.add_image(base, "amd64")
    arm64, _arm64_size = registry.add_image(base, "arm64")
    index, _size = registry.add_index(base, [
        {"mediaType": MEDIA_OCI_MANIFEST, "digest": amd64, "size": amd64_size,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": MEDIA_OCI_MANIFEST, "digest": arm64, "size": amd64_size,
         "platform": {"architecture": "arm64", "os": "linux"}}], tag="1.0")
    # The index: cosign's .sig tag with two signatures, one by the release key, one by another key.
    good, foreign = payload(index), payload(index)
    sig = _signature_manifest(registry, base, [(signed_layer("ecdsa-p256", good), good),
                                               (signed_layer("ecdsa-p384", foreign), foreign)])
    sig_digest, _size = registry.add_manifest(base, sig, tag=index.replace(":", "-") + ".sig")
    # amd64: an OCI 1.1 referrer in the tag schema, signed for the arm64 digest (copied from another image).
    wrong = payload(arm64)
    referrer = _signature_manifest(registry, base, [(signed_layer("ecdsa-p256", wrong), wrong)],
                                   subject={"mediaType": MEDIA_OCI_MANIFEST, "digest": amd64, "size": amd64_size})
    ref_digest, ref_size = registry.add_manifest(base, referrer, tag="")
    registry.add_index(base, [model.referrer_descriptor(MEDIA_OCI_MANIFEST, ref_digest, ref_size, referrer)],
                       tag=model.tag_schema_tag(amd64))
    # arm64: a referrer whose payload blob is gone, and a Notation signature (not verified).
    missing = payload(arm64) + b"\n"   # never pushed
    gone = {"mediaType": MEDIA_OCI_MANIFEST, "layers": [signed_layer("ecdsa-p256", missing)],
            "artifactType": model.COSIGN_SIGNATURE, "schemaVersion": 2}
    bundle = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "artifactType": "application/vnd.cncf.notary."
              "signature", "layers": [{"mediaType": "application/jose+json", "digest": SUBJECT, "size": 1}]}
    descriptors = [model.referrer_descriptor(MEDIA_OCI_MANIFEST, *registry.add_manifest(base, doc, tag=""), doc)
                   for doc in (gone, bundle)]
    registry.add_index(base, descriptors, tag=model.tag_schema_tag(arm64))

    keys = parse_signature_keys([pem(SIGNERS["ecdsa-p256"][0])])
    image = ManifestFacts(registry, referrers=True, signature_keys=keys).gather([base])[0]
    release = key_id(SIGNERS["ecdsa-p256"][0])

    assert [(s["referrer"], s["source"], s["verified"], s["key_id"], s["reason"]) for s in image["signatures"]] == [
        (sig_digest, "cosign-tag", True, release, None), (sig_digest, "cosign-tag", False, None, "other-key")]
    assert image["supply_chain"] == {"signed": True, "signers": [release], "signature_present": True,
                                     "sbom": False, "provenance": False}
    entry_amd64, entry_arm64 = image["manifests"]
    assert [(s["source"], s["reason"], s["key_id"]) for s in entry_amd64["signatures"]] == [
        ("tag-schema", "other-digest", release)]
    assert entry_amd64["supply_chain"]["signed"] is False and entry_amd64["supply_chain"]["signature_present"]
    assert [s["reason"] for s in entry_arm64["signatures"]] == ["unreadable", "unsupported"]
    assert "BLOB_UNKNOWN" in entry_arm64["signatures"][0]["message"]
    assert "not a cosign signature (application/jose+json)" in \
        entry_arm64["signatures"][1]["message"]

    # Without keys: nothing more is read, nothing verified, and presence keeps its own name.
    registry.calls.clear()
    plain = ManifestFacts(registry, referrers=True).gather([base])[0]
    assert "signatures" not in plain and plain["supply_chain"]["signed"] is False
    assert plain["supply_chain"]["signature_present"] is True
    assert not [c for c in registry.calls if c[0] == "get_blob" and c[2] != amd64]


# ---------------------------------------------------------------------------------------------- signing
@pytest.mark.parametrize("name", ["ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-pkcs1v15", "ed25519"])
def test_what_the_collection_signs_verifies_as_cosign_checks_it(name):
    private = SIGNERS[name][0]
    encrypted = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"pass-Phrase-1")).decode()
    key, public = load_signing_key(encrypted, "pass-Phrase-1")
    assert public.key_id == key_id(private)
    data = cosign.simple_signing_payload(SUBJECT, REGISTRY + "/" + REPOSITORY)
    # cosign's own bytes (sigstore payload.Cosign, as cosign's pkg/cosign/obsolete_test.go writes them)
    assert data == ('{"critical":{"identity":{"docker-reference":"%s/%s"},"image":{"docker-manifest-digest":"%s"},'
                    '"type":"cosign container image signature"},"optional":null}'
                    % (REGISTRY, REPOSITORY, SUBJECT)).encode()
    a_layer = cosign.signature_layer(sha256_digest(data), len(data), sign_payload(key, data))
    fact = verify([pem(private)], a_layer, data)
    assert fact["verified"] is True and fact["key_id"] == key_id(private)
    config = json.loads(cosign.signature_config([sha256_digest(data)]))
    assert config["rootfs"] == {"diff_ids": [sha256_digest(data)], "type": "layers"}


def test_signing_keys_refused_with_one_sentence_and_never_the_passphrase():
    private = SIGNERS["ecdsa-p256"][0]
    encrypted = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"right-Phrase-1")).decode()
    plain = _private_pem(private)
    cases = [
        ((encrypted, "wrong-Phrase-2"), "signing_key: the passphrase does not decrypt the key"),
        ((encrypted, None), "signing_key is encrypted: give its passphrase"),
        ((plain, "unneeded-Phrase-3"), "signing_key is not encrypted: give no passphrase"),
        (("not a key", None), "signing_key is not a PEM private key"),
        ((pem(private), None), "signing_key is a PEM PUBLIC KEY, not a private key"),
        (("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
          "x"), "signing_key is in cosign's own encrypted format"),
        ((_private_pem(ec.generate_private_key(ec.SECP256K1())), None), "signing_key is a key cosign does not sign"),
    ]
    for (text, passphrase), message in cases:
        with pytest.raises(OptionError) as caught:
            load_signing_key(text, passphrase)
        assert message in str(caught.value)
        assert (passphrase or "\0") not in str(caught.value) and "MIG" not in str(caught.value)


def test_signing_options_of_docker_manifest_create(tmp_path):
    from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.signing import parse_signing_options
    private = SIGNERS["ed25519"][0]
    path = tmp_path / "signing.pem"
    path.write_text(_private_pem(private))
    key, public = parse_signing_options({"signing_key": str(path), "state": "present"})
    assert public.key_id == key_id(private) and public.type == "ed25519"
    assert parse_signing_options({"signing_key": _private_pem(private)})[1].key_id == key_id(private)
    assert parse_signing_options({}) is None
    # A passphrase without a key is refused by the module's argument spec (required_by; test_publish checks it).
    with pytest.raises(OptionError, match="signing_key signs what state=present writes"):
        parse_signing_options({"signing_key": str(path), "state": "absent"})


def test_signing_recursive_needs_a_key_and_leaves_attestation_entries_out():
    from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.signing import (
        parse_signing_options,
        platform_entries,
    )
    with pytest.raises(OptionError, match="signing_recursive signs the platforms with signing_key"):
        parse_signing_options({"signing_recursive": True})
    amd64 = {"mediaType": MEDIA_OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 1,
             "platform": {"os": "linux", "architecture": "amd64"}}
    attestation = {"mediaType": MEDIA_OCI_MANIFEST, "digest": "sha256:" + "2" * 64, "size": 1,
                   "platform": {"os": "unknown", "architecture": "unknown"},
                   "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                   "vnd.docker.reference.digest": amd64["digest"]}}
    assert platform_entries({"manifests": [amd64, attestation]}) == [amd64]
    assert platform_entries({"layers": []}) == [] and platform_entries(None) == []

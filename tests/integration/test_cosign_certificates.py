"""Real cosign is the judge for certificates: docker_manifest_info verifies what `cosign sign --certificate` writes,
against certificate_identity, certificate_oidc_issuer and trusted_root, in both forms cosign writes.

A CA made here (a P-384 root and intermediate, as Fulcio's) issues code-signing certificates with Fulcio's
subjectAltName and OIDC issuer extension (1.3.6.1.4.1.57264.1.8, and the deprecated .1.1); cosign (peer
``cosign``, tools/peers.sh) signs with each certificate's key, offline (``--tlog-upload=false``): in the legacy
form (``dev.sigstore.cosign/certificate`` and ``.../chain`` annotations on the simple-signing layer, ``.sig`` tag)
and as a Sigstore bundle (``--new-bundle-format``, an OCI 1.1 referrer). Each bad certificate of issue 20 (another
identity, another issuer, expired, from another CA) is refused with its reason, and `cosign verify
--insecure-ignore-tlog --insecure-ignore-sct` agrees both ways. A missing peer is a skip naming it (a failure under
ARCHFLEET_REQUIRE_PEERS=1).
"""
from __future__ import annotations

import base64
import datetime
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from harness.suite import peer_or_skip
from harness.ansible_run import play, task
from harness.images import push_image
from harness.registry import Registry
from test_cosign_signatures import Cosign

IDENTITY, ISSUER = "release@example.com", "https://issuer.example"
NOW = datetime.datetime.now(datetime.timezone.utc)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture(scope="module")
def cosign(tmp_path_factory):
    return Cosign(peer_or_skip("cosign"), tmp_path_factory.mktemp("cosign-certificates-home"))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "archfleet test sigstore"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str, issuer: tuple | None = None, path_length: int = 0):
    """``(key, certificate)`` of a CA; self-signed without ``issuer`` (its key and certificate)."""
    key = ec.generate_private_key(ec.SECP384R1())
    issuer_key, issuer_cert = issuer or (key, None)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name))
            .issuer_name(issuer_cert.subject if issuer_cert else _name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - 24 * HOUR).not_valid_after(NOW + 24 * HOUR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(issuer_key, hashes.SHA384()))
    return key, cert


def _utf8(text: str) -> bytes:
    data = text.encode()
    return bytes([0x0C, len(data)]) + data


def fulcio_leaf(ca: tuple, identity: str = IDENTITY, issuer: str = ISSUER, *, uri: bool = False,
                deprecated_only: bool = False, valid: tuple | None = None):
    """``(key, certificate)`` as Fulcio issues it: empty subject, SAN (email or URI), code signing, issuer ext."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = valid or (NOW - datetime.timedelta(minutes=5), NOW + HOUR)
    san = x509.UniformResourceIdentifier(identity) if uri else x509.RFC822Name(identity)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca[1].subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.SubjectAlternativeName([san]), critical=True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                              critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
               .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()),
                              critical=False))
    if not deprecated_only:
        builder = builder.add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
                                                                   _utf8(issuer)), critical=False)
    return key, builder.sign(ca[0], hashes.SHA256())


def pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def trusted_root_json(*chains) -> str:
    """Sigstore's trusted_root.json with one certificate authority per chain (intermediate first, root last)."""
    return json.dumps({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": [], "ctlogs": [],
        "timestampAuthorities": [],
        "certificateAuthorities": [{
            "subject": {"organization": "archfleet test sigstore", "commonName": "intermediate"},
            "uri": "https://fulcio.invalid",
            "certChain": {"certificates": [{"rawBytes": base64.b64encode(
                c.public_bytes(serialization.Encoding.DER)).decode()} for c in chain]},
            "validFor": {"start": (NOW - 48 * HOUR).strftime("%Y-%m-%dT%H:%M:%SZ")}} for chain in chains]})


class Signer:
    """One certificate and its key imported into cosign (cosign sign --key needs its own key format)."""

    def __init__(self, cosign_peer: Cosign, name: str, leaf: tuple, chain: list):
        directory = cosign_peer.home / name
        directory.mkdir()
        (directory / "leaf.pem").write_bytes(leaf[0].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        cosign_peer.run("import-key-pair", "--key", "leaf.pem", cwd=directory)
        self.cosign, self.key = cosign_peer, directory / "import-cosign.key"
        self.cert, self.chain = directory / "cert.pem", directory / "chain.pem"
        self.cert.write_bytes(pem(leaf[1]))
        self.chain.write_bytes(b"".join(pem(c) for c in chain))

    def sign(self, image: str, *extra: str) -> None:
        self.cosign.sign(self.key, image, "--certificate", str(self.cert), "--certificate-chain", str(self.chain),
                         *extra)


def _cosign_verify(cosign_peer: Cosign, image: str, *trust: str) -> subprocess.CompletedProcess:
    return subprocess.run([cosign_peer.binary, "verify", "--certificate-identity", IDENTITY,
                           "--certificate-oidc-issuer", ISSUER, "--insecure-ignore-tlog=true",
                           "--insecure-ignore-sct=true", "--allow-http-registry", *trust, image],
                          env=cosign_peer.env, capture_output=True, text=True, timeout=300, check=False)


def _summary(image):
    return [(s["source"], s["verified"], s["reason"], s["identity"]) for s in image["signatures"]]


def test_certificates_cosign_attaches_verify_against_identity_issuer_and_trusted_root(playbook, cosign, tmp_path):
    root = _ca("root", path_length=1)
    intermediate = _ca("intermediate", root)
    chain = [intermediate[1], root[1]]
    stranger_root = _ca("another root", path_length=1)
    stranger = _ca("another intermediate", stranger_root)
    signers = {
        "legacy": Signer(cosign, "good", fulcio_leaf(intermediate), chain),
        "uri": Signer(cosign, "uri", fulcio_leaf(intermediate, "https://ci.example/release.yml@refs/heads/main",
                                                 uri=True, deprecated_only=True), chain),
        "other-identity": Signer(cosign, "other-identity", fulcio_leaf(intermediate, "mallory@example.com"), chain),
        "other-issuer": Signer(cosign, "other-issuer", fulcio_leaf(intermediate, issuer="https://other.example"),
                               chain),
        "expired": Signer(cosign, "expired", fulcio_leaf(intermediate, valid=(NOW - 3 * HOUR, NOW - 2 * HOUR)),
                          chain),
        "untrusted": Signer(cosign, "untrusted", fulcio_leaf(stranger), [stranger[1], stranger_root[1]]),
    }
    signers["bundle"] = signers["legacy"]
    trusted_root = tmp_path / "trusted_root.json"
    trusted_root.write_text(trusted_root_json(chain))
    ca_roots = tmp_path / "ca-roots.pem"
    ca_roots.write_bytes(pem(root[1]))
    ca_bundle = tmp_path / "ca-bundle.pem"
    ca_bundle.write_bytes(pem(intermediate[1]) + pem(root[1]))
    with Registry() as registry:
        h, repo = registry.host, "keyless/app"
        digests = {tag: push_image(registry.url, repo, tag, payload=f"{tag}\n".encode())["digest"]
                   for tag in ("legacy", "bundle", "uri", "other-identity", "other-issuer", "expired", "untrusted")}
        ref = {tag: f"{h}/{repo}@{digest}" for tag, digest in digests.items()}
        for tag, signer in signers.items():
            signer.sign(ref[tag], *(["--new-bundle-format"] if tag == "bundle" else []))

        images = [f"{h}/{repo}:{tag}" for tag in digests]
        trust = {"certificate_identity": IDENTITY, "certificate_oidc_issuer": ISSUER}
        run = playbook(play(
            task("json", "docker_manifest_info", images=images, referrers=True, trusted_root=str(trusted_root),
                 **trust),
            task("pem", "docker_manifest_info", images=images[:2], referrers=True, trusted_root=str(ca_roots), **trust),
            task("pem-chain", "docker_manifest_info", images=images[1:2], referrers=True, trusted_root=str(ca_bundle),
                 **trust),
            task("uri", "docker_manifest_info", images=[f"{h}/{repo}:uri"], referrers=True,
                 trusted_root=ca_roots.read_text(), certificate_oidc_issuer=ISSUER,
                 certificate_identity="https://ci.example/release.yml@refs/heads/main")))
        assert run.rc == 0, run.output
        facts = dict(zip(digests, run.result("json")["images"]))
        assert run.result("json")["certificate_policy"] == {
            "certificate_identity": IDENTITY, "certificate_oidc_issuer": ISSUER, "trusted_root": str(trusted_root),
            "roots": 1, "intermediates": 1}
        signer = f"{IDENTITY} ({ISSUER})"
        assert _summary(facts["legacy"]) == [("cosign-tag", True, None, IDENTITY)]
        assert facts["legacy"]["supply_chain"]["signers"] == [signer]
        assert facts["legacy"]["signatures"][0]["docker_reference"] == f"{h}/{repo}"
        # The bundle: an OCI 1.1 referrer, found through the referrers tag schema on Debian's registry.
        assert _summary(facts["bundle"]) == [("tag-schema", True, None, IDENTITY)]
        assert facts["bundle"]["signatures"][0]["issuer"] == ISSUER
        assert facts["bundle"]["signatures"][0]["docker_reference"] is None
        assert facts["uri"]["supply_chain"]["signed"] is False          # its identity is a URI, not release@
        reasons = {tag: [(s["reason"], s["message"]) for s in facts[tag]["signatures"]]
                   for tag in ("other-identity", "other-issuer", "expired", "untrusted")}
        assert reasons["other-identity"] == [("other-identity", f"the certificate is for mallory@example.com, not "
                                                                f"{IDENTITY}")]
        assert reasons["other-issuer"] == [("other-issuer", f"the certificate's OIDC issuer is https://other.example, "
                                                            f"not {ISSUER}")]
        assert reasons["expired"][0][0] == "expired-certificate"
        assert "checked at the time of verification" in reasons["expired"][0][1]
        assert reasons["untrusted"][0][0] == "untrusted-certificate"
        assert "does not chain to a root of" in reasons["untrusted"][0][1]
        for tag in ("other-identity", "other-issuer", "expired", "untrusted"):
            assert facts[tag]["supply_chain"]["signed"] is False
            assert facts[tag]["supply_chain"]["signature_present"] is True
        # A PEM bundle of roots (cosign's --ca-roots) serves as well: for the legacy form, whose chain annotation
        # has the intermediate; a bundle holds the leaf only, so the intermediate must be in the PEM bundle too.
        legacy, bundle = run.result("pem")["images"]
        assert legacy["supply_chain"]["signed"] is True
        assert [s["reason"] for s in bundle["signatures"]] == ["untrusted-certificate"]
        assert run.result("pem-chain")["images"][0]["supply_chain"]["signed"] is True
        # A URI identity with only the deprecated issuer extension (1.3.6.1.4.1.57264.1.1) verifies.
        uri = run.result("uri")["images"][0]["signatures"][0]
        assert (uri["verified"], uri["identity"], uri["issuer"]) == (
            True, "https://ci.example/release.yml@refs/heads/main", ISSUER)

        # cosign agrees: the legacy form with --ca-roots, the bundle with --trusted-root; it refuses the bad ones.
        ok = _cosign_verify(cosign, ref["legacy"], "--ca-roots", str(ca_roots))
        assert ok.returncode == 0, ok.stderr
        ok = _cosign_verify(cosign, ref["bundle"], "--new-bundle-format", "--trusted-root", str(trusted_root))
        assert ok.returncode == 0, ok.stderr
        for tag in ("other-identity", "other-issuer", "expired", "untrusted"):
            refused = _cosign_verify(cosign, ref[tag], "--ca-roots", str(ca_roots))
            assert refused.returncode != 0, (tag, refused.stdout)


def test_certificate_options_are_all_three_or_none(playbook, tmp_path):
    run = playbook(play(task("half", "docker_manifest_info", images=["127.0.0.1:1/x:1"], referrers=True,
                             certificate_identity=IDENTITY, ignore_errors=True),
                        task("norefs", "docker_manifest_info", images=["127.0.0.1:1/x:1"],
                             certificate_identity=IDENTITY, certificate_oidc_issuer=ISSUER,
                             trusted_root=trusted_root_json([_ca("r")[1]]), ignore_errors=True)))
    assert "certificate_identity given without certificate_oidc_issuer, trusted_root" in run.result("half")["msg"]
    assert "certificate_identity verifies the signatures that referrers finds" in run.result("norefs")["msg"]


@pytest.mark.parametrize("content,expected", [
    ("not a root", "is neither JSON nor PEM certificates"),
    ('{"tlogs": []}', "is JSON but not a Sigstore trusted root"),
])
def test_a_bad_trusted_root_is_one_clear_error(playbook, tmp_path, content, expected):
    path = tmp_path / "root"
    path.write_text(content)
    run = playbook(play(task("bad", "docker_manifest_info", images=["127.0.0.1:1/x:1"], referrers=True,
                             certificate_identity=IDENTITY, certificate_oidc_issuer=ISSUER, trusted_root=str(path),
                             ignore_errors=True)))
    assert expected in run.result("bad")["msg"] and str(path) in run.result("bad")["msg"]


def test_the_audit_reports_name_the_verified_signers_and_why_the_others_do_not_count(playbook, cosign, tmp_path):
    """audit_certificate_identity beside audit_signature_keys: the HTML and JUnit reports show each image's verified
    signers (the key id, or the certificate's identity and issuer) and, where signed fails, the reason in words."""
    from html.parser import HTMLParser
    from xml.etree import ElementTree

    from test_audit import AUDIT_PLAYBOOK, audit_vars
    root = _ca("root", path_length=1)
    intermediate = _ca("intermediate", root)
    chain = [intermediate[1], root[1]]
    release_key, release_pub = cosign.generate("audit-cert-release")
    other_key, _other_pub = cosign.generate("audit-cert-other")
    by_cert = Signer(cosign, "audit-good", fulcio_leaf(intermediate), chain)
    mallory = Signer(cosign, "audit-mallory", fulcio_leaf(intermediate, "mallory@example.com"), chain)
    trusted_root = tmp_path / "trusted_root.json"
    trusted_root.write_text(trusted_root_json(chain))
    repo = "audited/keyless"
    with Registry() as registry:
        h = registry.host
        digests = {tag: push_image(registry.url, repo, tag, payload=f"{tag}\n".encode())["digest"]
                   for tag in ("key", "cert", "mallory", "other-key", "unsigned")}
        cosign.sign(release_key, f"{h}/{repo}@{digests['key']}")
        by_cert.sign(f"{h}/{repo}@{digests['cert']}")
        mallory.sign(f"{h}/{repo}@{digests['mallory']}")
        cosign.sign(other_key, f"{h}/{repo}@{digests['other-key']}")
        report_dir = tmp_path / "report"
        variables = audit_vars(registry, report_dir, *[f"{repo}:{tag}" for tag in digests], audit_require_platforms=[],
                               audit_signature_keys=[str(release_pub)], audit_certificate_identity=IDENTITY,
                               audit_certificate_oidc_issuer=ISSUER, audit_trusted_root=str(trusted_root),
                               audit_fail_on_error=False, audit_formats=["json", "junit", "html"])
        run = playbook(AUDIT_PLAYBOOK, extra_vars=variables, cwd=tmp_path)
        assert run.rc == 0, run.output
    document = json.loads((report_dir / "audit.json").read_text())
    key_id = document["images"][0]["supply_chain"]["signers"][0]
    assert key_id.startswith("sha256:")
    expected = {"key": (key_id, "1 signature, verified"),
                "cert": (f"{IDENTITY} ({ISSUER})", "1 signature, verified"),
                "mallory": ("", "1 signature, for another identity"),
                "other-key": ("", "1 signature, by another key"),
                "unsigned": ("", "no signature")}
    junit = ElementTree.parse(report_dir / "audit.junit.xml").getroot()
    suites = {suite.get("name").rsplit(":", 1)[1]: suite for suite in junit}
    seen = {}
    for tag, suite in suites.items():
        properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
        seen[tag] = (properties["signers"], properties["signatures"])
        signed = [case for case in suite if case.get("name") == "signed"][0]
        if expected[tag][0]:
            assert signed.find("system-out") is None
        else:
            assert f"signed failed: {expected[tag][1]} (" in signed.find("system-out").text
    assert seen == expected

    class Cells(HTMLParser):
        """The text of each row of the matrix table (image, then every cell) and each <small class=...>."""

        def __init__(self):
            super().__init__()
            self.rows, self.table, self.text = [], None, None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.table = dict(attrs).get("id")
            elif self.table == "matrix" and tag == "tr":
                self.rows.append([])
            elif self.table == "matrix" and tag in ("td", "th") and self.rows:
                self.rows[-1].append("")

        def handle_data(self, data):
            if self.table == "matrix" and self.rows and self.rows[-1]:
                self.rows[-1][-1] += data

    cells = Cells()
    cells.feed((report_dir / "audit.html").read_text())
    signed_cells = {tag: row for tag in ("mallory", "other-key") for row in cells.rows
                    if row and f"{repo}:{tag}" in row[0]}
    html = (report_dir / "audit.html").read_text()
    assert f"by {key_id}" in html and f"by {IDENTITY} ({ISSUER})" in html
    assert any("1 signature, for another identity" in cell for cell in signed_cells["mallory"])
    assert any("1 signature, by another key" in cell for cell in signed_cells["other-key"])
    assert '<small class="reason">1 signature, by another key</small>' in html

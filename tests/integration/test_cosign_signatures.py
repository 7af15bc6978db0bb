"""Real cosign is the judge: docker_manifest_info verifies what `cosign sign --key` writes, in both storage forms.

cosign (peer ``cosign``, built by tools/peers.sh at its pinned version) signs images in a local registry with
keys it generated (``cosign generate-key-pair``, COSIGN_PASSWORD) or imported (``cosign import-key-pair``: an
RSA key made here), offline (``--tlog-upload=false``): in its ``<alg>-<hex>.sig`` tag scheme, and as an OCI
1.1 referrer (``--registry-referrers-mode=oci-1-1``), which on Debian's registry (no Referrers API) is found
through the referrers tag schema, and through the Referrers API on go-containerregistry's registry (peer
``ggcr-registry``). Then images signed with another key, with a truncated signature, for another digest and
for another repository are each reported not verified with their reason. A missing peer is a skip naming
it (a failure under ARCHFLEET_REQUIRE_PEERS=1).
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.ansible_run import play, task
from harness.suite import missing_peer, peer_or_skip
from harness.goregistry import GgcrRegistry, PeerUnavailable
from harness.images import OCI_MANIFEST, PushClient, encode_json, push_image, push_index, sha256_digest
from harness.registry import Registry

PASSWORD = "cosign-Test-Pw1"


class Cosign:
    def __init__(self, binary: str, home: Path):
        self.binary, self.home = binary, home
        self.env = {**os.environ, "HOME": str(home), "COSIGN_PASSWORD": PASSWORD, "COSIGN_YES": "true",
                    "TUF_ROOT": str(home / "tuf"), "COSIGN_EXPERIMENTAL": "1"}

    def run(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run([self.binary, *args], cwd=cwd or self.home, env=self.env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"cosign {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def generate(self, name: str) -> tuple[Path, Path]:
        directory = self.home / name
        directory.mkdir()
        self.run("generate-key-pair", cwd=directory)
        return directory / "cosign.key", directory / "cosign.pub"

    def import_rsa(self, name: str) -> tuple[Path, Path]:
        directory = self.home / name
        directory.mkdir()
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        (directory / "rsa.pem").write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                                                  serialization.PrivateFormat.PKCS8,
                                                                  serialization.NoEncryption()))
        self.run("import-key-pair", "--key", "rsa.pem", cwd=directory)
        return directory / "import-cosign.key", directory / "import-cosign.pub"

    def sign(self, key: Path, image: str, *referrers: str) -> None:
        self.run("sign", "--key", str(key), "--tlog-upload=false", "--allow-http-registry", "--yes",
                 *referrers, image)


@pytest.fixture(scope="module")
def cosign(tmp_path_factory):
    return Cosign(peer_or_skip("cosign"), tmp_path_factory.mktemp("cosign-home"))


def _image(registry, repo: str, tag: str) -> str:
    pushed = push_image(registry.url, repo, tag, payload=f"{repo}:{tag}\n".encode())
    return pushed["digest"]


def _verify(playbook, images, keys):
    run = playbook(play(task("verify", "docker_manifest_info", images=images, referrers=True,
                             signature_keys=[str(k) for k in keys])))
    assert run.rc == 0, run.output
    return run.result("verify")


def _summary(image):
    return [(s["source"], s["verified"], s["reason"]) for s in image["signatures"]]


def rsa_key_files(tmp_path, passphrase=None):
    """``(signing.pem, signing.pub)`` in ``tmp_path``: a new RSA 2048 key as PKCS#8 (encrypted with ``passphrase``
    when given) and its public key, as the collection's signing_key and signature_keys take them."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               encryption))
    public_pem = tmp_path / "signing.pub"
    public_pem.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_file, public_pem


def test_signatures_cosign_writes_in_both_forms_verify_and_tampered_ones_do_not(playbook, cosign):
    release_key, release_pub = cosign.generate("release")
    other_key, _other_pub = cosign.generate("other")
    rsa_key, rsa_pub = cosign.import_rsa("rsa")
    with Registry() as registry:
        h, repo = registry.host, "signed/app"
        digests = {tag: _image(registry, repo, tag) for tag in ("tag-form", "referrer", "other-key", "truncated",
                                                                "rsa", "copied", "unsigned")}
        ref = {tag: f"{h}/{repo}@{digest}" for tag, digest in digests.items()}
        cosign.sign(release_key, ref["tag-form"])
        cosign.sign(release_key, ref["referrer"], "--registry-referrers-mode=oci-1-1")
        cosign.sign(other_key, ref["other-key"])
        cosign.sign(rsa_key, ref["rsa"])
        cosign.sign(release_key, ref["truncated"])
        cosign.sign(release_key, ref["copied"])
        with PushClient(registry.url) as client:
            _truncate_signature(client, repo, digests["truncated"])
            # The signature of "copied" put on "unsigned": a valid signature, for another digest.
            _copy_signature(client, repo, digests["copied"], digests["unsigned"])
        # Another repository's signature, copied with its image byte for byte (the same digest), as a mirror
        # does: cosign's docker-reference still names the first repository.
        mirrored = push_image(registry.url, "mirror/app", "tag-form", payload=f"{repo}:tag-form\n".encode())
        assert mirrored["digest"] == digests["tag-form"]
        with PushClient(registry.url) as client:
            _copy_signature(client, repo, digests["tag-form"], digests["tag-form"], "mirror/app")

        images = [f"{h}/{repo}:{tag}" for tag in digests] + [f"{h}/mirror/app:tag-form"]
        result = _verify(playbook, images, [release_pub, rsa_pub])
        facts = dict(zip(list(digests) + ["mirror"], result["images"]))
        key_ids = {key["source"]: key["key_id"] for key in result["signature_keys"]}
        release_id, rsa_id = key_ids[str(release_pub)], key_ids[str(rsa_pub)]
        assert [key["type"] for key in result["signature_keys"]] == ["ecdsa-p256", "rsa-3072"]

        assert _summary(facts["tag-form"]) == [("cosign-tag", True, None)]
        assert facts["tag-form"]["supply_chain"]["signers"] == [release_id]
        assert facts["tag-form"]["signatures"][0]["docker_reference"] == f"{h}/{repo}"
        # oci-1-1 on a registry without the Referrers API: the referrers tag schema, as cosign maintains it.
        assert _summary(facts["referrer"]) == [("tag-schema", True, None)]
        assert facts["referrer"]["supply_chain"]["signed"] is True
        assert facts["rsa"]["supply_chain"]["signers"] == [rsa_id]
        assert _summary(facts["other-key"]) == [("cosign-tag", False, "other-key")]
        assert facts["other-key"]["supply_chain"] == {"signed": False, "signers": [], "signature_present": True,
                                                      "sbom": False, "provenance": False}
        assert _summary(facts["truncated"]) == [("cosign-tag", False, "bad-signature")]
        unsigned = facts["unsigned"]["signatures"][0]
        assert (unsigned["reason"], unsigned["key_id"]) == ("other-digest", release_id)
        assert unsigned["message"] == "the payload is signed for %s, not %s" % (digests["copied"],
                                                                                digests["unsigned"])
        mirrored = facts["mirror"]["signatures"][0]
        assert mirrored["reason"] == "other-repository" and f"{h}/{repo}" in mirrored["message"]
        for tag in ("other-key", "truncated", "unsigned"):
            assert facts[tag]["supply_chain"]["signed"] is False

        # cosign itself agrees: it accepts the good one and refuses the tampered one.
        cosign.run("verify", "--key", str(release_pub), "--insecure-ignore-tlog=true", "--allow-http-registry",
                   ref["tag-form"])
        proc = subprocess.run([cosign.binary, "verify", "--key", str(release_pub), "--insecure-ignore-tlog=true",
                               "--allow-http-registry", ref["truncated"]], env=cosign.env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode != 0


def test_a_multi_platform_index_signed_recursively_is_verified_per_platform(playbook, cosign):
    """cosign sign --recursive signs the index and each platform: each entry of the facts has its own signature."""
    release_key, release_pub = cosign.generate("recursive-release")
    with Registry() as registry:
        children = [push_image(registry.url, "multi/app", platform=platform, payload=platform.encode())
                    for platform in ("linux/amd64", "linux/arm64")]
        index = push_index(registry.url, "multi/app", "1", children)
        cosign.sign(release_key, f"{registry.host}/multi/app@{index['digest']}", "--recursive")
        # Without --recursive only the index itself is signed: its platform is not.
        lone = push_image(registry.url, "multi/app", platform="linux/riscv64", payload=b"riscv64")
        half = push_index(registry.url, "multi/app", "2", [lone])
        cosign.sign(release_key, f"{registry.host}/multi/app@{half['digest']}")
        result = _verify(playbook, [f"{registry.host}/multi/app:1", f"{registry.host}/multi/app:2"], [release_pub])
        recursive, top_only = result["images"]
        assert recursive["kind"] == "index" and _summary(recursive) == [("cosign-tag", True, None)]
        assert [(m["platform_string"], _summary(m)) for m in recursive["manifests"]] == [
            ("linux/amd64", [("cosign-tag", True, None)]), ("linux/arm64", [("cosign-tag", True, None)])]
        assert [m["supply_chain"]["signed"] for m in recursive["manifests"]] == [True, True]
        assert top_only["supply_chain"]["signed"] is True
        assert top_only["manifests"][0]["signatures"] == []
        assert top_only["manifests"][0]["supply_chain"]["signed"] is False


def test_a_referrer_signature_through_the_referrers_api(playbook, cosign):
    release_key, release_pub = cosign.generate("api-release")
    try:
        registry = GgcrRegistry()
    except PeerUnavailable as missing:
        missing_peer(f"ggcr-registry: {missing}")
    with registry:
        digest = _image(registry, "api/app", "1")
        cosign.sign(release_key, f"{registry.host}/api/app@{digest}", "--registry-referrers-mode=oci-1-1")
        image = _verify(playbook, [f"{registry.host}/api/app:1"], [release_pub])["images"][0]
        assert _summary(image) == [("api", True, None)]
        assert image["referrers"][0]["artifact_type"] == "application/vnd.dev.cosign.artifact.sig.v1+json"


# -- tampering, as an attacker with push access would ------------------------------------------------
def _sig_manifest(client: PushClient, repo: str, digest: str) -> dict:
    response = client.get_manifest(repo, digest.replace(":", "-") + ".sig")
    assert response.status_code == 200, response.text
    return response.json()


def _truncate_signature(client: PushClient, repo: str, digest: str) -> None:
    document = _sig_manifest(client, repo, digest)
    annotations = document["layers"][0]["annotations"]
    signature = base64.b64decode(annotations["dev.cosignproject.cosign/signature"])
    annotations["dev.cosignproject.cosign/signature"] = base64.b64encode(signature[:len(signature) // 2]).decode()
    client.push_manifest(repo, digest.replace(":", "-") + ".sig", encode_json(document), OCI_MANIFEST)


def _copy_signature(client: PushClient, repo: str, source: str, target: str, target_repo: str | None = None) -> None:
    """Put the .sig manifest of ``source`` at the .sig tag of ``target`` in ``target_repo`` (blobs copied)."""
    target_repo = target_repo or repo
    document = _sig_manifest(client, repo, source)
    for descriptor in [document["config"]] + document["layers"]:
        blob = client.request("GET", f"/v2/{repo}/blobs/{descriptor['digest']}", scope=f"repository:{repo}:pull")
        assert sha256_digest(blob.content) == descriptor["digest"]
        client.push_blob(target_repo, blob.content)
    client.push_manifest(target_repo, target.replace(":", "-") + ".sig", encode_json(document),
                         document.get("mediaType") or OCI_MANIFEST)


# -- the other way round: what the collection's signing primitives write, cosign verify accepts -------
def test_cosign_verify_accepts_signatures_made_with_the_collections_signing_code(playbook, cosign, tmp_path):
    """The building block of signing on publish (issue 20, part 2): _oci.cosign writes the payload, layer and
    config as cosign does, _signatures signs with a passphrase-protected PKCS#8 key; pushed in cosign's tag
    scheme, `cosign verify --key` accepts the signature (transparency log ignored, as for any private key)."""
    import sys
    collections = str(Path(__file__).resolve().parents[2] / "build" / "collections")
    if collections not in sys.path:
        sys.path.insert(0, collections)
    from ansible_collections.archfleet.multiarch.plugins.module_utils._oci import cosign as model
    from ansible_collections.archfleet.multiarch.plugins.module_utils._signatures import load_signing_key, \
        sign_payload

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(PASSWORD.encode())).decode()
    key, public = load_signing_key(encrypted, PASSWORD)
    public_pem = tmp_path / "collection.pub"
    public_pem.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    with Registry() as registry:
        repo = "written/app"
        digest = _image(registry, repo, "1")
        data = model.simple_signing_payload(digest, f"{registry.host}/{repo}")
        config = model.signature_config([sha256_digest(data)])
        with PushClient(registry.url) as client:
            layer = model.signature_layer(client.push_blob(repo, data), len(data), sign_payload(key, data))
            manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": client.push_blob(repo, config), "size": len(config)},
                        "layers": [layer]}
            client.push_manifest(repo, digest.replace(":", "-") + ".sig", encode_json(manifest), OCI_MANIFEST)
        out = cosign.run("verify", "--key", str(public_pem), "--insecure-ignore-tlog=true", "--allow-http-registry",
                         f"{registry.host}/{repo}@{digest}")
        assert digest in out
        image = _verify(playbook, [f"{registry.host}/{repo}:1"], [public_pem])["images"][0]
        assert image["supply_chain"]["signers"] == [public.key_id]


def test_the_audit_verifies_with_audit_signature_keys_and_its_junit_report_names_signers_and_reasons(
        playbook, cosign, tmp_path):
    """audit_signature_keys (no audit_referrers needed): signed passes for the image cosign signed with the key,
    fails for the one signed with another key; the JUnit report names the signers and the reason."""
    from xml.etree import ElementTree

    from test_audit import AUDIT_PLAYBOOK, audit_vars
    release_key, release_pub = cosign.generate("audit-release")
    other_key, _other_pub = cosign.generate("audit-other")
    with Registry() as registry:
        good, bad = _image(registry, "audited/app", "good"), _image(registry, "audited/app", "bad")
        cosign.sign(release_key, f"{registry.host}/audited/app@{good}")
        cosign.sign(other_key, f"{registry.host}/audited/app@{bad}")
        report_dir = tmp_path / "report"
        variables = audit_vars(registry, report_dir, "audited/app:good", "audited/app:bad", audit_require_platforms=[],
                               audit_signature_keys=[str(release_pub)], audit_fail_on_error=False,
                               audit_formats=["json", "junit"])
        run = playbook(AUDIT_PLAYBOOK, extra_vars=variables, cwd=tmp_path)
        assert run.rc == 0, run.output
    document = json.loads((report_dir / "audit.json").read_text())
    outcomes = {i["canonical"].rsplit(":", 1)[1]: {r["policy"]: r["outcome"] for r in i["results"]}
                for i in document["images"]}
    assert (outcomes["good"]["signed"], outcomes["good"]["signature-present"]) == ("pass", "pass")
    assert (outcomes["bad"]["signed"], outcomes["bad"]["signature-present"]) == ("fail", "pass")
    junit = ElementTree.parse(report_dir / "audit.junit.xml").getroot()
    suites = {suite.get("name").rsplit(":", 1)[1]: suite for suite in junit}
    signers = {name: {p.get("name"): p.get("value") for p in suite.find("properties")}["signers"]
               for name, suite in suites.items()}
    good_key = document["images"][0]["supply_chain"]["signers"][0]
    assert signers == {"good": good_key, "bad": ""}
    signed_case = [case for case in suites["bad"] if case.get("name") == "signed"][0]
    assert "signatures not verified: %s/audited/app:bad: other-key (none of the 1 given key(s) verifies" % (
        registry.host) in signed_case.find("system-out").text


def test_docker_manifest_create_signs_what_it_writes_and_cosign_verify_accepts_it(playbook, cosign, tmp_path):
    """signing_key (issue 20, part 2): the index written is signed in cosign's tag scheme (Debian's registry has no
    Referrers API); cosign verify --key accepts it; a re-run writes nothing; check mode says what it would sign."""
    key_file, public_pem = rsa_key_files(tmp_path, PASSWORD)
    with Registry() as registry:
        h = registry.host
        sources = [f"{h}/publish/app@" + push_image(registry.url, "publish/app", platform=platform,
                                                    payload=platform.encode())["digest"]
                   for platform in ("linux/amd64", "linux/arm64")]
        create = {"name": f"{h}/publish/app:1", "sources": sources, "signing_key": str(key_file),
                  "signing_key_passphrase": PASSWORD}
        run = playbook(play(task("first", "docker_manifest_create", **create),
                            task("again", "docker_manifest_create", **create),
                            dict(task("check", "docker_manifest_create",
                                      **{**create, "name": f"{h}/publish/app:2", "sources": sources[:1]}),
                                 check_mode=True),
                            task("verify", "docker_manifest_info", images=[f"{h}/publish/app:1"], referrers=True,
                                 signature_keys=[str(public_pem)])))
        assert run.rc == 0, run.output
        first, again, check = run.result("first"), run.result("again"), run.result("check")
        assert first["changed"] is True and first["signature"]["signed"] is True
        assert first["signature"]["form"] == "tag" and first["signature"]["digest"] == first["digest"]
        assert again["changed"] is False and again["signature"]["signed"] is False
        assert check["signature"]["signed"] is True and check["changed"] is True
        assert run.result("verify")["images"][0]["supply_chain"]["signers"] == [first["signature"]["key_id"]]
        out = cosign.run("verify", "--key", str(public_pem), "--insecure-ignore-tlog=true", "--allow-http-registry",
                         f"{h}/publish/app@{first['digest']}")
        assert first["digest"] in out
        assert PASSWORD not in run.output


def test_a_refused_signature_write_fails_naming_the_index_and_a_rerun_signs_it(playbook, cosign, tmp_path):
    """The registry refuses the .sig write: the index is written, the task fails naming what was not signed, and
    the re-run (the registry accepting again) signs it without writing the index again. A wrong passphrase is one
    clear error, never showing the passphrase, also at -vvv."""
    from harness.proxy import Fault, Proxy

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_text = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(PASSWORD.encode())).decode()
    refusing = {"on": True}

    def refuse_signatures(request):
        if refusing["on"] and request.method == "PUT" and request.path.endswith(".sig"):
            return Fault.respond(403, {"Content-Type": "application/json"},
                                 b'{"errors":[{"code":"DENIED","message":"signatures are not allowed here"}]}')
        return None

    with Registry() as registry, Proxy(registry, fault=refuse_signatures) as proxy:
        source = f"{proxy.host}/refused/app@" + _image(registry, "refused/app", "src")
        create = {"name": f"{proxy.host}/refused/app:1", "sources": [source], "signing_key": key_text,
                  "signing_key_passphrase": PASSWORD}
        run = playbook(play(task("refused", "docker_manifest_create", ignore_errors=True, **create)))
        refused = run.result("refused")
        assert refused["failed"] is True
        assert "was written but not signed" in refused["msg"] and f"{proxy.host}/refused/app@sha256:" in refused["msg"]
        refusing["on"] = False
        run = playbook(play(task("again", "docker_manifest_create", **create)))
        assert run.rc == 0, run.output
        again = run.result("again")
        assert again["written_tags"] == [] and again["signature"]["signed"] is True and again["changed"] is True
        assert again["signature"]["digest"] in refused["msg"]

        wrong = playbook(play(task("wrong", "docker_manifest_create", ignore_errors=True,
                                   **{**create, "signing_key_passphrase": "wrong-Secret-Pw5"})), verbosity=3)
        assert "signing_key: the passphrase does not decrypt the key" in wrong.result("wrong")["msg"]
        assert "wrong-Secret-Pw5" not in wrong.output and PASSWORD not in wrong.output


def test_on_a_registry_with_the_referrers_api_the_signature_is_a_referrer_cosign_verifies(playbook, cosign, tmp_path):
    """go-containerregistry's registry has the Referrers API: docker_manifest_create writes the signature as an OCI
    1.1 referrer; cosign verify --experimental-oci11 accepts it and docker_manifest_info finds it through the API."""
    try:
        registry = GgcrRegistry()
    except PeerUnavailable as missing:
        missing_peer(f"ggcr-registry: {missing}")
    key_file, public_pem = rsa_key_files(tmp_path)
    with registry:
        h = registry.host
        source = f"{h}/api/signed@" + _image(registry, "api/signed", "src")
        run = playbook(play(task("create", "docker_manifest_create", name=f"{h}/api/signed:1", sources=[source],
                                 signing_key=str(key_file)),
                            task("verify", "docker_manifest_info", images=[f"{h}/api/signed:1"], referrers=True,
                                 signature_keys=[str(public_pem)])))
        assert run.rc == 0, run.output
        created = run.result("create")
        assert created["signature"]["form"] == "referrer" and created["signature"]["signed"] is True
        assert _summary(run.result("verify")["images"][0]) == [("api", True, None)]
        out = cosign.run("verify", "--key", str(public_pem), "--insecure-ignore-tlog=true", "--allow-http-registry",
                         "--experimental-oci11", f"{h}/api/signed@{created['digest']}")
        assert created["digest"] in out


def test_signing_recursive_signs_every_platform_once_and_cosign_verifies_a_platform_digest(playbook, cosign, tmp_path):
    """signing_recursive (as cosign sign --recursive): the index and each platform manifest it lists get a signature
    by the key, `cosign verify --key` accepts a platform's digest, docker_manifest_info finds each platform signed,
    a re-run writes nothing, and a platform added later is the only one signed on the next run."""
    key_file, public_pem = rsa_key_files(tmp_path)
    with Registry() as registry:
        h = registry.host
        sources = [f"{h}/recursive/app@" + push_image(registry.url, "recursive/app", platform=platform,
                                                      payload=platform.encode())["digest"]
                   for platform in ("linux/amd64", "linux/arm64", "linux/riscv64")]
        create = {"name": f"{h}/recursive/app:1", "sources": sources[:2], "signing_key": str(key_file),
                  "signing_recursive": True}
        run = playbook(play(dict(task("check", "docker_manifest_create", **create), check_mode=True, diff=True),
                            task("first", "docker_manifest_create", **create),
                            task("again", "docker_manifest_create", **create),
                            task("more", "docker_manifest_create", **{**create, "sources": sources}),
                            task("verify", "docker_manifest_info", images=[f"{h}/recursive/app:1"], referrers=True,
                                 signature_keys=[str(public_pem)])))
        assert run.rc == 0, run.output
        check, first, again, more = (run.result(name) for name in ("check", "first", "again", "more"))
        assert check["changed"] is True and [p["signed"] for p in check["signature"]["platforms"]] == [True, True]
        assert "signature: linux/arm64 sha256:" in check["diff"]["after"]
        assert first["signature"]["signed"] is True
        assert [(p["platform"], p["signed"], p["form"]) for p in first["signature"]["platforms"]] == [
            ("linux/amd64", True, "tag"), ("linux/arm64", True, "tag")]
        assert again["changed"] is False and again["signature"]["signed"] is False
        assert [p["signed"] for p in again["signature"]["platforms"]] == [False, False]
        # The index changed (a new digest, signed), and of its platforms only the new one is signed.
        assert more["signature"]["signed"] is True
        assert [(p["platform"], p["signed"]) for p in more["signature"]["platforms"]] == [
            ("linux/amd64", False), ("linux/arm64", False), ("linux/riscv64", True)]
        image = run.result("verify")["images"][0]
        assert image["supply_chain"]["signed"] is True
        assert [m["supply_chain"]["signed"] for m in image["manifests"]] == [True, True, True]
        child = first["signature"]["platforms"][1]["digest"]
        out = cosign.run("verify", "--key", str(public_pem), "--insecure-ignore-tlog=true", "--allow-http-registry",
                         f"{h}/recursive/app@{child}")
        assert child in out

"""The publish_manifests role with real ansible-playbook against a real registry.

Two inventory hosts report per-platform digests the way build_images does (``build_images_results``),
pointing at images the registry already holds, so the role runs without a docker engine or emulators
(nothing here touches the kernel's binfmt_misc). This file runs in every venv of the version matrix.
"""
from __future__ import annotations

import json

from harness.ansible_run import play

PUBLISH = "archfleet.multiarch.publish_manifests : Publish the index, pinned by digest"


def inventory(tmp_path, registry):
    fixtures, h = registry.fixtures, registry.host
    hosts = {}
    for name, fixture, platform in (("builder-amd64", "single_amd64", "linux/amd64"),
                                    ("builder-arm64", "single_arm64", "linux/arm64")):
        digest = fixtures[fixture]["digest"]
        hosts[name] = {"build_images_results": [{
            "platform": platform, "digest": digest, "image": "app", "host": name,
            "repository": f"{h}/fixtures/single", "tag": "build", "reference": f"{h}/fixtures/single@{digest}"}]}
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps({"all": {"hosts": hosts, "vars": {"ansible_connection": "local"}}}))
    return str(path)


def test_role_publishes_the_reported_digests_and_rerun_changes_nothing(playbook, open_registry, tmp_path):
    h = open_registry.host
    target = f"{h}/apps/role-publish:1.0"
    document = play({"name": "publish", "ansible.builtin.include_role": {"name": "archfleet.multiarch.publish_manifests"}},
                    hosts="all", vars={"publish_manifests_name": target, "publish_manifests_tags": ["latest"],
                                       "publish_manifests_platforms": ["linux/amd64", "linux/arm64"],
                                       "publish_manifests_source": "https://example.invalid/app"})
    hosts = inventory(tmp_path, open_registry)

    first = playbook(document, inventory=hosts)
    assert first.rc == 0, first.output
    published = first.result(PUBLISH)
    assert published["changed"] is True
    assert published["platforms"] == ["linux/amd64", "linux/arm64"]
    assert published["manifest"]["annotations"] == {"org.opencontainers.image.source": "https://example.invalid/app"}
    assert {m["digest"] for m in published["manifest"]["manifests"]} == {
        open_registry.fixtures["single_amd64"]["digest"], open_registry.fixtures["single_arm64"]["digest"]}

    again = playbook(document, inventory=hosts)
    assert again.rc == 0, again.output
    assert again.result(PUBLISH)["changed"] is False
    assert again.result(PUBLISH)["digest"] == published["digest"]
    assert again.changed_total() == 0, again.output


def test_role_signs_the_index_with_a_vaulted_style_key_and_rerun_does_not_sign_again(playbook, open_registry,
                                                                                     tmp_path):
    """publish_manifests_signing_key (PEM text, as a vaulted variable gives it) and its passphrase, recursive: the
    index and each platform are signed once (docker_manifest_create signing_key, signing_recursive);
    docker_manifest_info verifies them; the passphrase is never shown."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    passphrase = "role-Signing-Pw7"
    key_text = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(passphrase.encode())).decode()
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    target = f"{open_registry.host}/apps/role-signed:1.0"
    role = {"name": "archfleet.multiarch.publish_manifests"}
    document = play({"name": "publish", "ansible.builtin.include_role": role},
                    {"name": "verify", "archfleet.multiarch.docker_manifest_info": {
                        "images": [target], "referrers": True, "signature_keys": [public]}, "run_once": True},
                    hosts="all", vars={"publish_manifests_name": target, "publish_manifests_signing_key": key_text,
                                       "publish_manifests_signing_key_passphrase": passphrase,
                                       "publish_manifests_signing_recursive": True})
    hosts = inventory(tmp_path, open_registry)
    first = playbook(document, inventory=hosts)
    assert first.rc == 0, first.output
    assert first.result(PUBLISH)["signature"]["signed"] is True
    assert first.result("verify")["images"][0]["supply_chain"]["signed"] is True
    # publish_manifests_signing_recursive: every platform is signed too (cosign sign --recursive), once.
    platforms = first.result(PUBLISH)["signature"]["platforms"]
    assert len(platforms) >= 2 and all(p["signed"] for p in platforms)
    assert all(m["supply_chain"]["signed"] for m in first.result("verify")["images"][0]["manifests"])
    again = playbook(document, inventory=hosts)
    assert again.rc == 0, again.output
    assert again.result(PUBLISH)["signature"]["signed"] is False and again.result(PUBLISH)["changed"] is False
    assert not any(p["signed"] for p in again.result(PUBLISH)["signature"]["platforms"])
    assert passphrase not in first.output + again.output


def test_a_host_that_reported_nothing_stops_the_release_unless_partial_is_allowed(playbook, open_registry, tmp_path):
    """A third build host that reported no digests (it failed or was unreachable): its platforms are named and
    nothing is written; with publish_manifests_allow_partial_release the two platforms that exist are published and
    publish_manifests_left_out says what was left out. The fleet with real hosts down is in test_fleet.py."""
    target = f"{open_registry.host}/apps/role-partial:1.0"
    path = inventory(tmp_path, open_registry)
    document = json.loads(open(path).read())
    document["all"]["hosts"]["builder-s390x"] = {"build_images_platforms": ["s390x", "linux/ppc64el"]}
    with open(path, "w") as handle:
        handle.write(json.dumps(document))
    step = {"name": "publish", "ansible.builtin.include_role": {"name": "archfleet.multiarch.publish_manifests"}}
    logged = len(open_registry.access_log())
    refused = playbook(play(step, hosts="all", vars={"publish_manifests_name": target}), inventory=path)
    assert refused.rc != 0, refused.output
    assert ("Nothing published: linux/ppc64le, linux/s390x are missing: build host(s) builder-s390x reported no "
            "per-platform digests") in refused.output, refused.output
    assert "Set publish_manifests_allow_partial_release to true" in refused.output
    assert f"TASK [{PUBLISH}]" not in refused.output
    writes = [e for e in open_registry.access_log()[logged:] if e.method in ("PUT", "POST", "PATCH", "DELETE")]
    assert writes == [], writes

    partial = playbook(play(step, {"name": "left out", "ansible.builtin.debug": {"var": "publish_manifests_left_out"},
                                   "run_once": True},
                            hosts="all", vars={"publish_manifests_name": target,
                                               "publish_manifests_allow_partial_release": True}), inventory=path)
    assert partial.rc == 0, partial.output
    assert partial.result(PUBLISH)["platforms"] == ["linux/amd64", "linux/arm64"]
    assert partial.result("left out")["publish_manifests_left_out"] == {
        "platforms": ["linux/ppc64le", "linux/s390x"], "hosts": ["builder-s390x"]}
    assert ("Partial release: %s is published without linux/ppc64le, linux/s390x (build host(s) builder-s390x "
            "reported no per-platform digests)" % target) in partial.output.replace("\n", " "), partial.output

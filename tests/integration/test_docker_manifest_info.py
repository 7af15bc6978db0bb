"""docker_manifest_info through real ansible-playbook runs against real registries."""
from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess

import pytest

from harness.suite import REGISTRY_VARIANTS, registry_options
from harness.ansible_run import play, task
from harness.images import skopeo_args
from harness.proxy import Proxy

ATTESTATION = "attestation-manifest"


def fixture_refs(registry):
    fx = registry.fixtures
    h = registry.host
    return [f"{h}/fixtures/multi:latest", f"{h}/fixtures/dockerlist:latest", f"{h}/fixtures/single:amd64",
            f"{h}/fixtures/docker-single:latest", fx["missing_tag"], fx["missing_repo"]]


def test_facts_in_every_registry_variant(playbook, seeded_registry):
    registry, fx = seeded_registry, seeded_registry.fixtures
    refs = fixture_refs(registry)
    run = playbook(play(task("inspect", "docker_manifest_info", images=refs,
                             require_platforms=["linux/arm64", "linux/arm/v7"], **registry_options(registry))))
    assert run.rc == 0, run.output
    result = run.result("inspect")
    assert result["changed"] is False
    multi, dockerlist, single, docker_single, missing_tag, missing_repo = result["images"]

    assert [i["reference"] for i in result["images"]] == refs
    assert multi["exists"] and multi["kind"] == "index"
    assert multi["digest"] == fx["multi"]["digest"]
    assert multi["media_type"] == "application/vnd.oci.image.index.v1+json"
    assert multi["platforms"] == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le", "linux/s390x"]
    assert {m["platform_string"]: m["digest"] for m in multi["manifests"]} == fx["multi"]["platforms"]
    assert len(multi["attestations"]) == 1
    assert multi["attestations"][0]["reference_digest"] == fx["multi"]["platforms"]["linux/amd64"]
    assert multi["attestations"][0]["reference_type"] == ATTESTATION
    assert multi["annotations"]["org.opencontainers.image.created"]
    assert multi["missing_platforms"] == []

    assert dockerlist["media_type"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert dockerlist["digest"] == fx["dockerlist"]["digest"]
    assert sorted(dockerlist["platforms"]) == ["linux/amd64", "linux/arm64"]
    assert dockerlist["missing_platforms"] == ["linux/arm/v7"]

    assert single["kind"] == "image" and single["platforms"] == ["linux/amd64"]
    assert single["digest"] == fx["single_amd64"]["digest"]
    assert single["missing_platforms"] == ["linux/arm64", "linux/arm/v7"]
    assert docker_single["media_type"] == "application/vnd.docker.distribution.manifest.v2+json"

    for missing in (missing_tag, missing_repo):
        assert missing["exists"] is False and missing["digest"] is None and missing["platforms"] == []

    # One manifest request per reference; single-platform images add their config blob.
    stats = result["registry_stats"]["requests"]
    assert stats["GET manifest"] == len(refs)
    assert stats.get("GET token", 0) <= 1


def test_config_details(playbook, open_registry):
    h = open_registry.host
    run = playbook(play(task("inspect", "docker_manifest_info", config=True,
                             images=[f"{h}/fixtures/multi:latest", f"{h}/fixtures/single:arm64"])))
    assert run.rc == 0, run.output
    multi, single = run.result("inspect")["images"]
    for entry in multi["manifests"]:
        config = entry["config"]
        assert config["created"] and config["layers"] >= 1 and config["size"] > 0
        assert config["labels"]["org.opencontainers.image.source"]
    assert single["config"]["labels"] == single["manifests"][0]["config"]["labels"]
    assert single["platforms"] == ["linux/arm64"]


def test_digest_agrees_with_skopeo(playbook, open_registry):
    ref = f"{open_registry.host}/fixtures/dockerlist:latest"
    raw = subprocess.run(["skopeo", "inspect", "--raw", *skopeo_args(open_registry), f"docker://{ref}"],
                         check=True, capture_output=True).stdout
    run = playbook(play(task("inspect", "docker_manifest_info", images=[ref])))
    assert run.result("inspect")["images"][0]["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_many_images_in_order_with_one_token(playbook, token_registry):
    h = token_registry.host
    refs = [f"{h}/fixtures/single:amd64", f"{h}/fixtures/multi:latest", f"{h}/fixtures/dockerlist:latest"] * 10
    refs += [f"{h}/fixtures/nothing-{n}:latest" for n in range(10)]
    token_registry.token_server.reset()
    run = playbook(play(task("inspect", "docker_manifest_info", images=refs, concurrency=8,
                             **registry_options(token_registry))))
    assert run.rc == 0, run.output
    images = run.result("inspect")["images"]
    assert [i["reference"] for i in images] == refs
    assert [i["exists"] for i in images] == [True] * 30 + [False] * 10
    # Every repository scope in one token request; tokens reused for all 40 references.
    assert token_registry.token_server.requests == 1
    assert run.result("inspect")["registry_stats"]["requests"]["GET manifest"] == 40


def test_check_mode_reads_the_same(playbook, open_registry):
    ref = f"{open_registry.host}/fixtures/multi:latest"
    run = playbook(play(task("inspect", "docker_manifest_info", images=[ref])), check=True)
    assert run.rc == 0 and run.result("inspect")["images"][0]["exists"] is True


def test_requests_through_a_proxy(playbook, open_registry):
    """Counted at the wire: exactly one manifest GET per reference, no writes."""
    with Proxy(open_registry) as proxy:
        refs = [f"{proxy.host}/fixtures/multi:latest", f"{proxy.host}/fixtures/dockerlist:latest"] * 5
        run = playbook(play(task("inspect", "docker_manifest_info", images=refs)))
        assert run.rc == 0, run.output
        assert proxy.count("GET", "manifest") == len(refs)
        assert proxy.count("HEAD") == 0 and proxy.writes == 0


@pytest.mark.parametrize("variant", [name for name, kwargs in sorted(REGISTRY_VARIANTS.items()) if kwargs.get("auth")])
def test_wrong_password_is_one_clear_error_without_secrets(playbook, variant):
    from harness.registry import Registry
    wrong = "Wr0ng-Pa55word-xyz"
    with Registry(**REGISTRY_VARIANTS[variant]) as registry:
        run = playbook(play(task("inspect", "docker_manifest_info", ignore_errors=True,
                                 images=[f"{registry.host}/fixtures/multi:latest"],
                                 **registry_options(registry, password=wrong))), verbosity=3)
    result = run.result("inspect")
    assert result["failed"] is True
    assert "UNAUTHORIZED" in result["msg"] and registry.host in result["msg"]
    assert wrong not in run.output
    assert base64.b64encode(f"{registry.username}:{wrong}".encode()).decode() not in run.output


def test_tls_needs_its_ca(playbook):
    from harness.registry import Registry
    with Registry(tls=True) as registry:
        ref = f"{registry.host}/fixtures/none:latest"
        run = playbook(play(
            task("no ca", "docker_manifest_info", ignore_errors=True, images=[ref]),
            task("with ca", "docker_manifest_info", images=[ref], ca_path=str(registry.ca_path)),
            task("no verify", "docker_manifest_info", images=[ref], validate_certs=False),
            task("insecure", "docker_manifest_info", images=[ref], insecure_registries=[registry.host]),
        ))
    no_ca = run.result("no ca")
    assert no_ca["failed"] and "TLS certificate of registry" in no_ca["msg"] and "ca_path" in no_ca["msg"]
    for name in ("with ca", "no verify", "insecure"):
        assert run.result(name)["images"][0]["exists"] is False, name


def test_unreachable_registry(playbook):
    run = playbook(play(task("inspect", "docker_manifest_info", ignore_errors=True, retries=1,
                             images=["127.0.0.1:9/app:1"])))
    result = run.result("inspect")
    assert result["failed"] and "cannot reach registry 127.0.0.1:9: connection refused" in result["msg"]


def _helper(tmp_path, name, username, secret):
    script = tmp_path / f"docker-credential-{name}"
    script.write_text("#!/bin/sh\nread url\n"
                      f"printf '%s' '{json.dumps({'Username': username, 'Secret': secret})}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.parametrize("source", ["auths", "credHelpers", "credsStore"])
def test_docker_config_credentials(playbook, token_registry, tmp_path, source):
    registry = token_registry
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    if source == "auths":
        config = {"auths": {f"http://{registry.host}": {"auth": auth}}}
    else:
        _helper(tmp_path, "fake", registry.username, registry.password)
        config = {"credHelpers": {registry.host: "fake"}} if source == "credHelpers" else {"credsStore": "fake"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin:/usr/sbin:/sbin"}
    run = playbook(play(task("inspect", "docker_manifest_info", docker_config=str(tmp_path / "config.json"),
                             images=[f"{registry.host}/fixtures/multi:latest"])), env=env, verbosity=3)
    assert run.rc == 0, run.output
    assert run.result("inspect")["images"][0]["exists"] is True
    for secret in (registry.password, auth):
        assert secret not in run.output


def test_docker_config_env_default(playbook, token_registry, tmp_path):
    registry = token_registry
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    run = playbook(play(task("inspect", "docker_manifest_info", images=[f"{registry.host}/fixtures/multi:latest"])),
                   env={"DOCKER_CONFIG": str(tmp_path)})
    assert run.rc == 0, run.output


def test_anonymous_pull_denied_is_clear(playbook):
    from harness.registry import Registry
    with Registry(auth="token", anonymous_acl={}) as registry:
        run = playbook(play(task("inspect", "docker_manifest_info", ignore_errors=True,
                                 images=[f"{registry.host}/fixtures/multi:latest"])))
    # The token service grants an anonymous token without pull: that image is refused, not the task (other
    # images, on other registries, would still be reported); the sentence says no credentials were found.
    image = run.result("inspect")["images"][0]
    assert image["exists"] is None and image["error"]["code"] == "DENIED", image
    assert f"{registry.host}/fixtures/multi does not exist or no pull access" in image["error"]["message"]
    assert f"no credentials were found for {registry.host}" in image["error"]["message"]


def test_identity_token_from_docker_config(playbook, tmp_path):
    """config.json identitytoken: the OAuth2 refresh-token flow (POST to the realm), then pulls."""
    from harness.registry import Registry
    refresh = "refresh-Token-Secret-42"
    with Registry(auth="token", anonymous_acl={}, refresh_tokens={refresh: "alice"}) as registry:
        config = {"auths": {registry.host: {"identitytoken": refresh}}}
        (tmp_path / "config.json").write_text(json.dumps(config))
        run = playbook(play(task("inspect", "docker_manifest_info", docker_config=str(tmp_path / "config.json"),
                                 images=[f"{registry.host}/nothing/here:1"])), verbosity=3)
        granted = registry.token_server.log[-1]
    assert run.rc == 0, run.output
    assert run.result("inspect")["images"][0]["exists"] is False
    assert granted.account == "alice" and granted.access[0]["actions"] == ["pull"]
    assert refresh not in run.output


def test_an_unreachable_registry_fails_only_its_images(playbook, open_registry):
    """One registry of an audit down (a closed port on loopback): the images on the other registry are
    reported, each image on the unreachable one carries the one sentence; all on it fails the task."""
    from harness.registry import free_port
    down = f"127.0.0.1:{free_port()}"
    healthy = f"{open_registry.host}/fixtures/multi:latest"
    run = playbook(play(task("mixed", "docker_manifest_info", images=[healthy, f"{down}/team/app:1"]),
                        task("all down", "docker_manifest_info", images=[f"{down}/team/app:1"], ignore_errors=True)))
    first, unreachable = run.result("mixed")["images"]
    assert first["exists"] is True and "error" not in first
    assert unreachable["exists"] is None and unreachable["error"]["code"] == "UNREACHABLE"
    assert unreachable["error"]["message"].startswith(f"cannot reach registry {down}: connection refused")
    failed = run.result("all down")
    assert failed["failed"] and failed["msg"].startswith(f"cannot reach registry {down}")

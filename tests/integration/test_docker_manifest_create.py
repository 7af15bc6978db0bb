"""docker_manifest_create through real ansible-playbook runs against real registries and real peers."""
from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from harness.suite import registry_options, unique
from harness.ansible_run import play, task
from harness.dockerd import Dockerd
from harness.images import MULTI_PLATFORMS, docker_cli_env, push_image, push_index, skopeo_args
from harness.proxy import Proxy
from harness.registry import Registry

DOCKER_CLI = "/usr/bin/docker"


def manifest_digest(registry, reference):
    """Digest of what ``reference`` points at, read with skopeo (None when it does not exist)."""
    proc = subprocess.run(["skopeo", "inspect", "--raw", *skopeo_args(registry), f"docker://{reference}"],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        return None
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def create(title="publish", **args):
    return task(title, "docker_manifest_create", **args)


# --- publishing and idempotency --------------------------------------------------------------
def test_publish_then_rerun_writes_nothing(playbook, open_registry):
    with Proxy(open_registry) as proxy:
        h = proxy.host
        target = f"{h}/{unique('apps/hello')}:1.0"
        # docker-single:latest is an amd64 image published as s390x: a deliberate override (force_platform).
        args = dict(name=target, tags=["latest", "1"], force_platform=True,
                    annotations={"org.opencontainers.image.source": "https://example.invalid/hello"},
                    sources=[f"{h}/fixtures/single:amd64",                       # another repository: mount
                             f"{h}/fixtures/single:arm64",
                             {"image": f"{h}/fixtures/docker-single:latest", "platform": "linux/s390x",
                              "annotations": {"org.opencontainers.image.title": "s390x build"}}])

        first = playbook(play(create(**args)), diff=True)
        assert first.rc == 0, first.output
        result = first.result("publish")
        assert result["changed"] is True
        assert result["platforms"] == ["linux/amd64", "linux/arm64", "linux/s390x"]
        assert result["media_type"] == "application/vnd.oci.image.index.v1+json"
        assert result["manifest"]["annotations"] == args["annotations"]
        assert result["copied"]["blobs_mounted"] > 0
        assert result["written_tags"] == [target, target.replace(":1.0", ":latest"), target.replace(":1.0", ":1")]
        assert "linux/arm64: sha256:" in first.output and "linux/s390x: sha256:" in first.output
        for tag in result["tags"]:
            assert manifest_digest(open_registry, tag.replace(h, open_registry.host)) == result["digest"]

        proxy.reset()
        second = playbook(play(create(**args)))
        again = second.result("publish")
        assert again["changed"] is False and again["digest"] == result["digest"]
        assert proxy.writes == 0
        # The floor: the current index once, one HEAD per source given by tag and per extra tag.
        assert proxy.count("GET", "manifest") == 1
        assert proxy.count("HEAD", "manifest") == len(args["sources"]) + len(args["tags"])
        assert proxy.count("GET", "blob") == 0


def test_check_mode_writes_nothing_and_predicts_the_digest(playbook, open_registry):
    with Proxy(open_registry) as proxy:
        h = proxy.host
        target = f"{h}/{unique('apps/check')}:1"
        args = dict(name=target, sources=[f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64"])
        checked = playbook(play(create(**args)), check=True, diff=True)
        assert checked.rc == 0, checked.output
        predicted = checked.result("publish")
        assert predicted["changed"] is True and proxy.writes == 0
        assert manifest_digest(open_registry, target.replace(h, open_registry.host)) is None
        real = playbook(play(create(**args))).result("publish")
        assert real["digest"] == predicted["digest"]


def test_concurrency_counts_requests_in_flight_across_the_indexes_of_a_batch(playbook, open_registry):
    """At most ``concurrency`` requests at once, whichever index they belong to, and no slot left idle:
    five indexes of two sources each keep eight slots busy (a share per index gave them one each)."""
    with Proxy(open_registry, delay=0.05) as proxy:
        h = proxy.host
        sources = [f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64"]
        indexes = [{"name": f"{h}/{unique('inflight/app')}:1", "sources": sources} for _index in range(5)]
        run = playbook(play(task("publish", "docker_manifest_create", indexes=indexes, concurrency=8)))
        assert run.rc == 0, run.output
        assert 6 <= proxy.most_in_flight <= 8, proxy.most_in_flight
        proxy.reset()
        again = playbook(play(task("publish", "docker_manifest_create", indexes=[
            {"name": f"{h}/{unique('inflight/narrow')}:1", "sources": sources} for _index in range(5)], concurrency=3)))
        assert again.rc == 0, again.output
        assert 1 <= proxy.most_in_flight <= 3, proxy.most_in_flight


def test_same_sources_same_digest_in_any_repository(playbook, open_registry):
    h = open_registry.host
    sources = [f"{h}/fixtures/single:arm64", f"{h}/fixtures/single:amd64"]
    run = playbook(play(create("a", name=f"{h}/{unique('det/a')}:x", sources=sources),
                        create("b", name=f"{h}/{unique('det/b')}:y", sources=sources)))
    assert run.rc == 0, run.output
    assert run.result("a")["digest"] == run.result("b")["digest"]
    # Entries are in source order.
    assert run.result("a")["platforms"] == ["linux/arm64", "linux/amd64"]


def test_cross_registry_sources_are_copied(playbook, open_registry, token_registry):
    target = f"{token_registry.host}/{unique('mirror/app')}:2"
    sources = [f"{open_registry.host}/fixtures/multi:latest"]
    run = playbook(play(create(name=target, sources=sources, attestations="drop",
                               **registry_options(token_registry))))
    assert run.rc == 0, run.output
    result = run.result("publish")
    assert result["platforms"] == list(MULTI_PLATFORMS)
    assert result["copied"]["manifests"] == 5 and result["copied"]["blobs_copied"] >= 10
    assert not [m for m in result["manifest"]["manifests"] if m["platform"]["os"] == "unknown"]
    # skopeo copies every platform out of the new index: every child and blob is really there.
    source_args = [a.replace("--creds", "--src-creds") for a in skopeo_args(token_registry)]
    subprocess.run(["skopeo", "copy", "--all", *source_args,
                    "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{target}", f"docker://{open_registry.host}/{unique('copied/app')}:2"],
                   check=True, capture_output=True)


def test_index_source_with_attestations(playbook, token_registry):
    h, fx = token_registry.host, token_registry.fixtures
    keep, drop = f"{h}/{unique('attest/keep')}:1", f"{h}/{unique('attest/drop')}:1"
    run = playbook(play(create("keep", name=keep, sources=[f"{h}/fixtures/multi:latest"]),
                        create("drop", name=drop, sources=[f"{h}/fixtures/multi:latest"], attestations="drop"),
                        task("facts", "docker_manifest_info", images=[keep, drop],
                             **registry_options(token_registry)),
                        module_defaults={"archfleet.multiarch.docker_manifest_create":
                                         registry_options(token_registry)}))
    assert run.rc == 0, run.output
    kept, dropped = run.result("facts")["images"]
    assert kept["attestations"][0]["reference_digest"] == fx["multi"]["platforms"]["linux/amd64"]
    assert kept["platforms"] == dropped["platforms"] == list(MULTI_PLATFORMS)
    assert dropped["attestations"] == []
    # Same entries, same order as the source index: the same bytes as the source written by the harness.
    assert {m["digest"] for m in kept["manifests"]} == set(fx["multi"]["platforms"].values())


def test_merge_adds_and_replaces_one_platform(playbook, open_registry):
    h = open_registry.host
    repo = unique("merge/app")
    new_arm64 = push_image(open_registry.url, repo, "arm64-new", platform="linux/arm64", payload=b"rebuilt arm64\n")
    target = f"{h}/{repo}:1"
    run = playbook(play(
        create("base", name=target, sources=[f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64"]),
        create("replace arm64", name=target, mode="merge", sources=[f"{h}/{repo}:arm64-new"]),
        create("add s390x", name=target, mode="merge", force_platform=True,
               sources=[{"image": f"{h}/fixtures/docker-single:arm64", "platform": "linux/s390x"}]),
        create("again", name=target, mode="merge", force_platform=True,
               sources=[{"image": f"{h}/fixtures/docker-single:arm64", "platform": "linux/s390x"}]),
    ), diff=True)
    assert run.rc == 0, run.output
    replaced = run.result("replace arm64")
    assert replaced["changed"] and replaced["platforms"] == ["linux/amd64", "linux/arm64"]
    assert replaced["manifest"]["manifests"][1]["digest"] == new_arm64["digest"]
    added = run.result("add s390x")
    assert added["platforms"] == ["linux/amd64", "linux/arm64", "linux/s390x"]
    assert run.result("again")["changed"] is False


def test_state_absent(playbook, open_registry):
    h = open_registry.host
    target = f"{h}/{unique('gone/app')}:rc1"
    run = playbook(play(
        create("publish", name=target, sources=[f"{h}/fixtures/single:amd64"]),
        {**create("check absent", name=target, state="absent"), "check_mode": True},
        create("absent", name=target, state="absent"),
        create("absent again", name=target, state="absent"),
    ))
    assert run.rc == 0, run.output
    digest = run.result("publish")["digest"]
    assert run.result("check absent")["changed"] is True
    assert run.result("absent")["changed"] is True and run.result("absent")["digest"] == digest
    assert run.result("absent again")["changed"] is False
    assert manifest_digest(open_registry, target) is None


def test_absent_deletes_only_the_named_tag(playbook, open_registry):
    """1.0-rc1, 1.0 and latest point at one index: deleting 1.0-rc1 leaves the other two resolving."""
    h = open_registry.host
    repo = unique("gone/release")
    rc1, release, latest = (f"{h}/{repo}:{tag}" for tag in ("1.0-rc1", "1.0", "latest"))
    run = playbook(play(
        create("publish", name=rc1, tags=["1.0", "latest"], sources=[f"{h}/fixtures/single:amd64"]),
        {**create("check absent", name=rc1, state="absent"), "check_mode": True},
        create("absent", name=rc1, state="absent"),
    ), diff=True)
    assert run.rc == 0, run.output
    digest = run.result("publish")["digest"]
    for title in ("check absent", "absent"):
        assert run.result(title)["written_tags"] == [rc1]
    assert run.result("absent")["deleted"] == "tombstone"  # the distribution registry cannot delete a tag
    assert manifest_digest(open_registry, rc1) is None
    assert manifest_digest(open_registry, release) == digest and manifest_digest(open_registry, latest) == digest


def test_absent_of_a_build_tag_keeps_the_manifest_an_index_lists(playbook, open_registry):
    h = open_registry.host
    repo = unique("gone/builds")
    amd64 = push_image(open_registry.url, repo, "amd64")
    arm64 = push_image(open_registry.url, repo, "arm64", platform="linux/arm64")
    release = f"{h}/{repo}:1.0"
    run = playbook(play(
        create("publish", name=release, sources=[f"{h}/{repo}:amd64", f"{h}/{repo}:arm64"]),
        create("tag only", name=f"{h}/{repo}:amd64", state="absent"),
        create("manifest", name=f"{h}/{repo}:arm64", state="absent", delete_manifest=True, ignore_errors=True),
        {**create("forced check", name=f"{h}/{repo}:arm64", state="absent", delete_manifest=True, force=True),
         "check_mode": True},
        task("read", "docker_manifest_info", images=[release], verify_children=True),
    ))
    assert run.rc == 0, run.output
    assert manifest_digest(open_registry, f"{h}/{repo}:amd64") is None
    refused = run.result("manifest")
    assert refused["failed"] and f"the index(es) {release} in the same repository still list it" in refused["msg"]
    assert run.result("forced check")["written_tags"] == [f"{h}/{repo}:arm64"]
    facts = run.result("read")["images"][0]
    assert facts["missing_children"] == [] and "error" not in facts
    assert [m["digest"] for m in facts["manifests"]] == [amd64["digest"], arm64["digest"]]


def test_delete_manifest_names_every_tag_that_goes(playbook, open_registry):
    h = open_registry.host
    repo = unique("gone/all")
    pushed = push_image(open_registry.url, repo, "a")
    push_image(open_registry.url, repo, "b")   # the same bytes: the same manifest under a second tag
    push_image(open_registry.url, repo, "other", platform="linux/arm64")
    run = playbook(play({**create("check", name=f"{h}/{repo}:a", state="absent", delete_manifest=True),
                         "check_mode": True},
                        create("delete", name=f"{h}/{repo}:a", state="absent", delete_manifest=True)), diff=True)
    assert run.rc == 0, run.output
    for title in ("check", "delete"):
        assert run.result(title)["written_tags"] == [f"{h}/{repo}:a", f"{h}/{repo}:b"]
    assert f"{h}/{repo}:b: {pushed['digest']}" in run.output
    assert manifest_digest(open_registry, f"{h}/{repo}:b") is None
    assert manifest_digest(open_registry, f"{h}/{repo}:other") is not None


def test_state_absent_where_deletes_are_disabled(playbook):
    with Registry(delete_enabled=False) as registry:
        pushed = push_image(registry.url, "app", "1")
        run = playbook(play(create(name=f"{registry.host}/app:1", state="absent", ignore_errors=True)))
        result = run.result("publish")
        writes = [e for e in registry.access_log() if not e.from_harness and e.method in ("PUT", "POST", "PATCH")]
        assert result["failed"] and "deletes neither tags (answered 405 UNSUPPORTED) nor manifests" in result["msg"]
        assert "nothing was written" in result["msg"] and writes == [], writes
        # The tag is untouched: it resolves to the image, and no throw-away manifest was left behind.
        assert manifest_digest(registry, f"{registry.host}/app:1") == pushed["digest"]


# --- peers read what we wrote ---------------------------------------------------------------
def test_peers_read_and_pull_every_platform(playbook, open_registry, tmp_path):
    h = open_registry.host
    target = f"{h}/{unique('interop/app')}:1"
    docker_target = f"{h}/{unique('interop/docker')}:1"
    oci_of_docker = f"{h}/{unique('interop/oci-docker')}:1"
    docker_sources = [f"{h}/fixtures/docker-single:latest", f"{h}/fixtures/docker-single:arm64"]
    run = playbook(play(
        create("oci", name=target, sources=[f"{h}/fixtures/multi:latest"], attestations="drop"),
        create("docker", name=docker_target, media_type="docker", sources=docker_sources),
        create("oci of docker", name=oci_of_docker, media_type="oci", sources=docker_sources),
    ))
    assert run.rc == 0, run.output
    assert run.result("docker")["media_type"] == "application/vnd.docker.distribution.manifest.list.v2+json"

    # Debian's docker CLI 20.10 never asks for OCI manifests, so it reads indexes of Docker children only.
    with docker_cli_env(h) as env:
        for reference, count in ((docker_target, 2), (oci_of_docker, 2)):
            inspect = subprocess.run([DOCKER_CLI, "manifest", "inspect", "--insecure", reference], env=env,
                                     capture_output=True, text=True, check=True)
            assert len(json.loads(inspect.stdout)["manifests"]) == count

    raw = subprocess.run(["skopeo", "inspect", "--raw", *skopeo_args(open_registry), f"docker://{target}"],
                         check=True, capture_output=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == run.result("oci")["digest"]
    subprocess.run(["skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{target}", f"oci:{tmp_path}/layout:app"], check=True, capture_output=True)

    with Dockerd(insecure_registries=[h]) as daemon:
        for platform in MULTI_PLATFORMS:
            daemon.docker("pull", "--platform", platform, target)
            arch = daemon.docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}/{{.Variant}}",
                                 target).stdout.strip().rstrip("/")
            assert arch == platform, (platform, arch)
            daemon.docker("rmi", target)


# --- errors: one clear message, nothing written ------------------------------------------------
def _assert_nothing_written(proxy, registry, target_on_registry):
    assert proxy.writes == 0
    assert manifest_digest(registry, target_on_registry) is None


@pytest.mark.parametrize("case", [
    "missing source", "duplicate platform", "no architecture", "annotations on docker list",
    "docker list of oci children", "platform override on index",
])
def test_plan_errors(playbook, open_registry, case):
    with Proxy(open_registry) as proxy:
        h = proxy.host
        repo = unique("errors/app")
        target = f"{h}/{repo}:1"
        if case == "no architecture":
            push_image(open_registry.url, repo, "noarch", platform={"os": "linux"}, payload=b"no architecture\n")
        proxy.reset()
        args, message = {
            "missing source": ({"sources": [f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:nope"]},
                               f"source {h}/fixtures/single:nope does not exist"),
            "duplicate platform": ({"sources": [f"{h}/fixtures/single:amd64", f"{h}/fixtures/docker-single:latest"]},
                                   f"duplicate platform linux/amd64: sources {h}/fixtures/single:amd64 and "
                                   f"{h}/fixtures/docker-single:latest both provide it"),
            "no architecture": ({"sources": [f"{h}/{repo}:noarch"]},
                                f"source {h}/{repo}:noarch has no architecture/os in its image config; "
                                "give it a platform"),
            "annotations on docker list": ({"sources": [f"{h}/fixtures/docker-single:latest"], "media_type": "docker",
                                            "annotations": {"a": "b"}},
                                           "annotations cannot be written to a Docker manifest list"),
            "docker list of oci children": ({"sources": [f"{h}/fixtures/single:amd64"], "media_type": "docker"},
                                            "media_type=docker needs Docker v2 image manifests"),
            "platform override on index": ({"sources": [{"image": f"{h}/fixtures/multi:latest",
                                                         "platform": "linux/amd64"}]},
                                           "a platform override is only allowed for single-platform sources"),
        }[case]
        run = playbook(play(create(name=target, ignore_errors=True, **args)))
        result = run.result("publish")
        assert result["failed"] is True
        assert message in result["msg"], result["msg"]
        assert proxy.writes == 0
        assert manifest_digest(open_registry, f"{open_registry.host}/{repo}:1") is None


def test_merge_into_a_tag_holding_a_single_image_makes_it_the_first_entry(playbook, open_registry):
    """As buildah and podman do: the image at the tag becomes the first entry of a new index."""
    h = open_registry.host
    repo = unique("merge-single/app")
    pushed = push_image(open_registry.url, repo, "1")
    args = dict(name=f"{h}/{repo}:1", sources=[f"{h}/fixtures/single:arm64"], mode="merge")
    run = playbook(play(create(**args)), diff=True)
    assert run.rc == 0, run.output
    result = run.result("publish")
    assert result["changed"] is True and result["platforms"] == ["linux/amd64", "linux/arm64"]
    assert result["manifest"]["manifests"][0]["digest"] == pushed["digest"]
    assert f"linux/amd64: {pushed['digest']}" in run.output  # the diff shows the image as "before"
    again = playbook(play(create(**args)))
    assert again.result("publish")["changed"] is False


def test_no_push_permission_is_said_plainly(playbook, token_registry):
    h = token_registry.host
    target = f"{h}/{unique('denied/app')}:1"
    reader = {"username": "reader", "password": token_registry.users["reader"]}
    run = playbook(play(create(name=target, ignore_errors=True, sources=[f"{h}/fixtures/single:amd64"], **reader),
                        {**create("check", name=target, ignore_errors=True, sources=[f"{h}/fixtures/single:amd64"],
                                  **reader), "check_mode": True}))
    for name in ("publish", "check"):
        result = run.result(name)
        assert result["failed"] is True
        assert f"no push permission on {h}/" in result["msg"] and "granted only pull" in result["msg"]
    assert manifest_digest(token_registry, target) is None


def test_source_the_credentials_cannot_read(playbook, open_registry):
    with Registry(auth="token", anonymous_acl={}) as private:
        push_image(private.url, "secret/app", "1", auth=private.auth_tuple)
        target = f"{open_registry.host}/{unique('from-private/app')}:1"
        run = playbook(play(create(name=target, ignore_errors=True, sources=[f"{private.host}/secret/app:1"])))
    result = run.result("publish")
    assert result["failed"] is True
    assert private.host in result["msg"] and "UNAUTHORIZED" in result["msg"]
    assert manifest_digest(open_registry, target) is None


# --- several indexes in one task -------------------------------------------------------------
def test_batch_publishes_several_indexes_and_reruns_without_writes(playbook, open_registry):
    with Proxy(open_registry) as proxy:
        h = proxy.host
        names = [f"{h}/{unique('batch/app')}:1" for _unused in range(3)]
        indexes = [{"name": name, "sources": [f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64"],
                    "tags": ["latest"]} for name in names]
        indexes[2]["annotations"] = {"org.opencontainers.image.source": "https://example.invalid/third"}
        first = playbook(play(create(indexes=indexes)), diff=True)
        assert first.rc == 0, first.output
        results = first.result("publish")["indexes"]
        assert [r["changed"] for r in results] == [True, True, True]
        assert results[0]["digest"] == results[1]["digest"] != results[2]["digest"]
        assert results[2]["tags"] == [names[2], names[2].replace(":1", ":latest")]
        assert [r["name"] for r in results] == names
        proxy.reset()
        again = playbook(play(create(indexes=indexes)))
        assert again.result("publish")["changed"] is False
        assert proxy.writes == 0


def test_batch_with_a_bad_source_writes_nothing(playbook, open_registry):
    with Proxy(open_registry) as proxy:
        h = proxy.host
        good, bad = f"{h}/{unique('batch/good')}:1", f"{h}/{unique('batch/bad')}:1"
        run = playbook(play(create(ignore_errors=True, indexes=[
            {"name": good, "sources": [f"{h}/fixtures/single:amd64"]},
            {"name": bad, "sources": [f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:gone"]},
        ])))
        result = run.result("publish")
        assert result["failed"] is True
        assert f"indexes[1] ({bad}): source {h}/fixtures/single:gone does not exist" in result["msg"]
        assert proxy.writes == 0


@pytest.mark.parametrize("args, message", [
    ({"indexes": [{"name": "127.0.0.1:9/a:1", "sources": ["127.0.0.1:9/s:1"]}], "name": "127.0.0.1:9/b:1"},
     "parameters are mutually exclusive: indexes|name"),
    ({"indexes": [{"name": "127.0.0.1:9/a:1", "sources": ["127.0.0.1:9/s:1"]},
                  {"name": "127.0.0.1:9/b:2", "sources": ["127.0.0.1:9/s:1"], "tags": ["1"]},
                  {"name": "127.0.0.1:9/b:1", "sources": ["127.0.0.1:9/s:1"]}]},
     "127.0.0.1:9/b:1 is published twice (by indexes[1] and indexes[2])"),
    ({"name": "127.0.0.1:9/a:1", "sources": ["127.0.0.1:9/s:1"], "tags": ["1"]},
     "127.0.0.1:9/a:1 is listed twice in 127.0.0.1:9/a:1 (name and tags)"),
    ({"indexes": [{"name": "127.0.0.1:9/a:1", "source": ["127.0.0.1:9/s:1"]}]},
     "indexes.source. Supported parameters include: annotations, name, sources, tags."),
    ({"indexes": [{"name": "127.0.0.1:9/a:1", "sources": ["127.0.0.1:9/S:1"]}]},
     "indexes[0].sources[0]: invalid image reference"),
    ({"sources": ["127.0.0.1:9/s:1"]}, "one of the following is required: name, indexes"),
])
def test_batch_bad_input(playbook, args, message):
    run = playbook(play(create(ignore_errors=True, **args)))
    result = run.result("publish")
    assert result["failed"] is True and message in result["msg"], result["msg"]


def test_same_entries_written_by_another_tool_is_unchanged_unless_forced(playbook, open_registry):
    """An index with our entries but other bytes (compact JSON, as another tool writes it) is left alone."""
    h = open_registry.host
    repo = unique("other-tool/app")
    children = [push_image(open_registry.url, repo, platform=p) for p in ("linux/amd64", "linux/arm64")]
    theirs = push_index(open_registry.url, repo, "1", children)
    sources = [{"image": f"{h}/{repo}@{c['digest']}", "platform": c["platform"]["os"] + "/" +
                c["platform"]["architecture"]} for c in children]
    run = playbook(play(create("same", name=f"{h}/{repo}:1", sources=sources),
                        create("forced", name=f"{h}/{repo}:1", sources=sources, force=True),
                        create("again", name=f"{h}/{repo}:1", sources=sources)))
    assert run.rc == 0, run.output
    same = run.result("same")
    assert same["changed"] is False and same["digest"] == theirs["digest"]
    forced = run.result("forced")
    assert forced["changed"] is True and forced["digest"] != theirs["digest"]
    assert manifest_digest(open_registry, f"{h}/{repo}:1") == forced["digest"]
    assert run.result("again")["changed"] is False

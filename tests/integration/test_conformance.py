"""A conformance corpus (harness/corpus.py): index shapes other tools produce, read and republished.

Each shape is read by docker_manifest_info, republished by docker_manifest_create with
attestations kept and dropped, re-run with zero writes, and read back by skopeo (and the docker
CLI for Docker manifest lists). Schema 1 and a registry that HEADs without a length are served
through the fault proxy, as Debian's registry stores neither.
"""
from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from harness.ansible_run import play, task
from harness.corpus import WINDOWS_2022, build_corpus, head_without_length, schema1_answer
from harness.images import DOCKER_CLI, docker_cli_env, push_image, skopeo_args
from harness.proxy import Proxy
from harness.suite import unique

SHAPES = ["buildx", "reference-types", "windows", "nested", "duplicates", "optional-fields", "empty"]
REPUBLISHED = [s for s in SHAPES if s != "empty"]


def raw_manifest(registry, reference):
    proc = subprocess.run(["skopeo", "inspect", "--raw", *skopeo_args(registry), f"docker://{reference}"],
                          capture_output=True, check=True)
    return proc.stdout


@pytest.fixture(scope="module")
def corpus(open_registry):
    return build_corpus(open_registry)


def test_info_reads_every_shape(playbook, open_registry, corpus):
    h = open_registry.host
    run = playbook(play(task("inspect", "docker_manifest_info", verify_children=True,
                             images=[f"{h}/conformance/app:{shape}" for shape in SHAPES])))
    assert run.rc == 0, run.output
    for shape, facts in zip(SHAPES, run.result("inspect")["images"]):
        expected = corpus[shape]
        assert facts["digest"] == expected["digest"], shape
        assert facts["kind"] == "index" and "error" not in facts, (shape, facts.get("error"))
        assert facts["platforms"] == expected["platforms"], shape
        assert len(facts["attestations"]) == expected["references"], shape
        assert facts["missing_children"] == [], shape
        if "kinds" in expected:
            assert [m["kind"] for m in facts["manifests"]] == expected["kinds"]


@pytest.mark.parametrize("shape", REPUBLISHED)
def test_republish_keep_and_drop_then_rerun_writes_nothing(playbook, open_registry, corpus, shape):
    with Proxy(open_registry) as proxy:
        h = proxy.host
        source = f"{h}/conformance/app:{shape}"
        kept, dropped = (f"{h}/{unique('conformance/mirror')}:{shape}" for _unused in range(2))
        tasks = [task("keep", "docker_manifest_create", name=kept, sources=[source], attestations="keep"),
                 task("drop", "docker_manifest_create", name=dropped, sources=[source], attestations="drop")]
        first = playbook(play(*tasks))
        assert first.rc == 0, first.output
        source_document = json.loads(raw_manifest(open_registry, f"{open_registry.host}/conformance/app:{shape}"))
        expected = corpus[shape]
        keep, drop = first.result("keep"), first.result("drop")
        for result in (keep, drop):
            assert result["changed"] is True and result["platforms"] == expected["platforms"]
        # Kept: every entry as the source lists it, fields and key order included.
        assert keep["manifest"]["manifests"] == source_document["manifests"]
        assert [list(e) for e in keep["manifest"]["manifests"]] == [list(e) for e in source_document["manifests"]]
        references = [e for e in drop["manifest"]["manifests"] if "vnd.docker.reference.digest" in
                      (e.get("annotations") or {})]
        assert references == []
        for target, result in ((kept, keep), (dropped, drop)):
            body = raw_manifest(open_registry, target.replace(h, open_registry.host))
            assert "sha256:" + hashlib.sha256(body).hexdigest() == result["digest"]

        proxy.reset()
        second = playbook(play(*tasks))
        assert second.rc == 0, second.output
        assert second.result("keep")["changed"] is False and second.result("drop")["changed"] is False
        assert proxy.writes == 0

    if expected["media"] == "docker":
        with docker_cli_env(open_registry.host) as env:
            inspect = subprocess.run([DOCKER_CLI, "manifest", "inspect", "--insecure",
                                      kept.replace(h, open_registry.host)], env=env, capture_output=True, text=True,
                                     check=True)
        assert [m["platform"].get("os.version") for m in json.loads(inspect.stdout)["manifests"]] == [
            None, "10.0.17763.5458"]


def test_an_empty_index_is_read_but_not_republished(playbook, open_registry):
    h = open_registry.host
    run = playbook(play(task("publish", "docker_manifest_create", ignore_errors=True,
                             name=f"{h}/{unique('conformance/mirror')}:empty", sources=[f"{h}/conformance/app:empty"])))
    assert f"source {h}/conformance/app:empty is an index without any platform entry" in run.result("publish")["msg"]


def test_windows_versions_are_separate_platforms(playbook, open_registry, corpus):
    h = open_registry.host
    repo = unique("conformance/win")
    target = f"{h}/{repo}:1"
    linux = push_image(open_registry.url, repo, "linux", platform="linux/amd64", media="docker")
    win2019 = push_image(open_registry.url, repo, "2019", platform=corpus["windows"]["win2022"]["platform"] | {
        "os.version": "10.0.17763.5458"}, media="docker", payload=b"windows 2019\n")
    push_image(open_registry.url, repo, "2022", platform=WINDOWS_2022, media="docker")
    run = playbook(play(
        # The docker CLI builds this list; it is not a duplicate platform.
        task("three", "docker_manifest_create", name=target, sources=[f"{h}/{repo}:linux", f"{h}/{repo}:2019",
                                                                      f"{h}/{repo}:2022"]),
        task("require", "docker_manifest_info", images=[f"{h}/conformance/app:windows"],
             require_platforms=["windows(10.0.20348)/amd64", "windows(10.0.17763)/amd64", "windows/amd64"]),
        task("merge", "docker_manifest_create", name=f"{h}/{repo}:merged", sources=[f"{h}/conformance/app:windows"]),
        task("merge2022", "docker_manifest_create", name=f"{h}/{repo}:merged", sources=[f"{h}/{repo}:2022"],
             mode="merge"),
    ))
    assert run.rc == 0, run.output
    assert run.result("three")["platforms"] == ["linux/amd64", "windows(10.0.17763.5458)/amd64",
                                                "windows(10.0.20348.2340)/amd64"]
    assert win2019["platform"]["os.version"] == "10.0.17763.5458"
    assert run.result("require")["images"][0]["missing_platforms"] == ["windows(10.0.20348)/amd64"]
    # Merging the 20348 image adds it beside the 17763 one instead of replacing it.
    assert run.result("merge2022")["platforms"] == ["linux/amd64", "windows(10.0.17763.5458)/amd64",
                                                    "windows(10.0.20348.2340)/amd64"]


def test_schema1_is_reported_for_that_image_and_refused_as_a_source(playbook, open_registry):
    with Proxy(open_registry, fault=schema1_answer("schema1")) as proxy:
        h = proxy.host
        run = playbook(play(
            task("inspect", "docker_manifest_info", images=[f"{h}/conformance/old:schema1", f"{h}/fixtures/multi"]),
            task("publish", "docker_manifest_create", ignore_errors=True, name=f"{h}/{unique('conformance/x')}:1",
                 sources=[f"{h}/conformance/old:schema1"])))
    old, multi = run.result("inspect")["images"]
    assert old["kind"] == "schema1" and old["exists"] is True and old["error"]["code"] == "UNSUPPORTED"
    assert "is a Docker schema 1 manifest" in old["error"]["message"]
    assert multi["kind"] == "index" and "error" not in multi
    publish = run.result("publish")
    assert publish["failed"] is True and "is a Docker schema 1 manifest" in publish["msg"]
    assert "digest" not in publish["msg"].split("manifest")[0]  # not the old digest-mismatch sentence


def test_a_registry_that_heads_without_a_length_gets_real_sizes(playbook, open_registry):
    h0 = open_registry.host
    with Proxy(open_registry, fault=head_without_length(open_registry)) as proxy:
        h = proxy.host
        target = f"{h}/{unique('conformance/nolength')}:1"
        args = dict(name=target, tags=["latest"], sources=[f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64"])
        first = playbook(play(task("publish", "docker_manifest_create", **args)))
        assert first.rc == 0, first.output
        sizes = [m["size"] for m in first.result("publish")["manifest"]["manifests"]]
        proxy.reset()
        second = playbook(play(task("publish", "docker_manifest_create", **args)))
        assert second.result("publish")["changed"] is False and proxy.writes == 0
    real = [len(raw_manifest(open_registry, f"{h0}/fixtures/single:{arch}")) for arch in ("amd64", "arm64")]
    assert sizes == real and all(size > 0 for size in sizes)


def test_registry_host_names_are_case_insensitive(playbook, open_registry):
    h = open_registry.host.replace("127.0.0.1", "LOCALHOST")
    run = playbook(play(task("inspect", "docker_manifest_info", images=[f"{h}/fixtures/multi"],
                             insecure_registries=[h.upper()])))
    assert run.rc == 0, run.output
    assert run.result("inspect")["images"][0]["kind"] == "index"

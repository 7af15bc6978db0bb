"""Faults during writes the older fault tests did not reach: cross-registry blob copies, deletes, batches.

Each run either succeeds or fails with one sentence naming the step; afterwards the target registry,
read directly, holds the old state or the complete new one (a tag never points at an index with
missing children, a deleted tag never points at the throw-away manifest).
"""
from __future__ import annotations

import json
import os

import pytest
import requests

from harness.ansible_run import play, task
from harness.images import ALL_MANIFEST_TYPES, push_image, push_index, sha256_digest
from harness.proxy import Fault, Proxy
from harness.registry import Registry


def at_tag(registry, repository, tag):
    """(digest, missing children) of what ``repository:tag`` holds, read directly; (None, []) when absent."""
    answer = requests.get(f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": ALL_MANIFEST_TYPES},
                          timeout=10)
    if answer.status_code == 404:
        return None, []
    document = json.loads(answer.content)
    missing = [c["digest"] for c in document.get("manifests") or []
               if requests.head(f"{registry.url}/v2/{repository}/manifests/{c['digest']}",
                                headers={"Accept": ALL_MANIFEST_TYPES}, timeout=10).status_code != 200]
    return sha256_digest(answer.content), missing


def first(method, kind, fault, path_part=""):
    """A fault hook breaking the first request that matches."""
    state = {"done": False}

    def hook(request):
        if state["done"] or request.method != method or request.kind != kind or path_part not in request.path:
            return None
        state["done"] = True
        return fault
    return hook


def always(method, kind, fault):
    return lambda request: fault if request.method == method and request.kind == kind else None


@pytest.fixture(scope="module")
def source():
    with Registry() as registry:
        children = [push_image(registry.url, "upstream/app", platform=p, layers=2, payload=p.encode())
                    for p in ("linux/amd64", "linux/arm64")]
        push_index(registry.url, "upstream/app", "1", children)
        yield registry


COPY_FAULTS = {
    "500 on the upload PATCH": (always("PATCH", "upload", Fault.respond(500, {}, b"disk full")),
                                ("copying blob", "500")),
    "503 on every upload PUT": (always("PUT", "upload", Fault.respond(503, {}, b"")), ("copying blob", "503")),
    "reset instead of the upload PATCH answer": (first("PATCH", "upload", Fault.reset()), ("copying blob",)),
    "500 on the first upload POST": (first("POST", "upload", Fault.respond(500, {}, b"")), ("copying blob", "500")),
    "503 on the first upload POST is retried": (first("POST", "upload", Fault.respond(503, {}, b"")), ()),
}


@pytest.mark.parametrize("name", list(COPY_FAULTS))
def test_cross_registry_copy_under_faults(playbook, source, name):
    hook, words = COPY_FAULTS[name]
    with Registry() as target:
        with Proxy(target, fault=hook) as proxy:
            run = playbook(play(task("copy", "docker_manifest_create", ignore_errors=True, retries=1,
                                     name=f"{proxy.host}/mirror/app:1", sources=[f"{source.host}/upstream/app:1"])))
        result = run.result("copy")
        digest, missing = at_tag(target, "mirror/app", "1")
    assert missing == []
    if words:
        assert result["failed"] is True and "\n" not in result["msg"], result["msg"]
        for word in words:
            assert word in result["msg"], (word, result["msg"])
        assert "unexpected error" not in result["msg"]
        assert digest is None, "a failed copy published the index"
    else:
        assert not result.get("failed"), result.get("msg")
        assert digest == result["digest"]


def test_a_source_blob_that_breaks_mid_stream_fails_the_copy_cleanly(playbook):
    with Registry() as origin, Registry() as target:
        push_image(origin.url, "upstream/app", "1", layers=1, payload=os.urandom(300000))  # incompressible
        with Proxy(origin, fault=always("GET", "blob", Fault.reset_after(1000))) as proxy:
            run = playbook(play(task("copy", "docker_manifest_create", ignore_errors=True, retries=1,
                                     name=f"{target.host}/mirror/app:1",
                                     sources=[{"image": f"{proxy.host}/upstream/app:1", "platform": "linux/amd64"}])))
        result = run.result("copy")
        assert result["failed"] is True and "copying blob" in result["msg"], result["msg"]
        assert at_tag(target, "mirror/app", "1") == (None, [])


DELETE_FAULTS = {
    "500 on the throw-away manifest DELETE": always("DELETE", "manifest", Fault.respond(500, {}, b"")),
    "reset instead of the DELETE answer": first("DELETE", "manifest", Fault.reset()),
    "500 on the throw-away manifest PUT": always("PUT", "manifest", Fault.respond(500, {}, b"")),
}


@pytest.mark.parametrize("name", list(DELETE_FAULTS))
def test_delete_under_faults_keeps_or_removes_the_tag_whole(playbook, name):
    with Registry() as registry:
        pushed = push_image(registry.url, "app", "rc1")
        push_image(registry.url, "app", "1.0")
        with Proxy(registry, fault=DELETE_FAULTS[name]) as proxy:
            run = playbook(play(task("delete", "docker_manifest_create", ignore_errors=True, retries=0,
                                     name=f"{proxy.host}/app:rc1", state="absent")))
        result = run.result("delete")
        rc1, _missing = at_tag(registry, "app", "rc1")
        release, _missing = at_tag(registry, "app", "1.0")
    assert release == pushed["digest"]                      # the other tag never moves
    if result.get("failed"):
        assert "\n" not in result["msg"] and "unexpected error" not in result["msg"]
        assert rc1 in (pushed["digest"], None), "the tag was left at the throw-away manifest"
    else:
        assert rc1 is None


def test_a_batch_that_fails_part_way_names_the_item_and_leaves_no_broken_index(playbook, source):
    with Registry() as target:
        def hook(request):
            if request.method == "PUT" and request.path.endswith("/two/app/manifests/1"):
                return Fault.respond(500, {}, b"")
            return None
        with Proxy(target, fault=hook) as proxy:
            run = playbook(play(task("batch", "docker_manifest_create", ignore_errors=True, retries=0, indexes=[
                {"name": f"{proxy.host}/one/app:1", "sources": [f"{source.host}/upstream/app:1"]},
                {"name": f"{proxy.host}/two/app:1", "sources": [f"{source.host}/upstream/app:1"]}])))
        result = run.result("batch")
        one = at_tag(target, "one/app", "1")
        two = at_tag(target, "two/app", "1")
    assert result["failed"] is True and result["msg"].startswith(f"indexes[1] ({proxy.host}/two/app:1): ")
    assert two == (None, []) and one[1] == []

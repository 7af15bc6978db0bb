"""Registries on object storage redirect blob GETs to another host: the redirect is followed, the
registry's Authorization is never sent there, and the bytes are still checked against their digest."""
from __future__ import annotations

from harness.ansible_run import play, task
from harness.images import push_image
from harness.proxy import Proxy
from harness.registry import Registry
from harness.storage import BlobStore, redirect_blobs


def test_blob_redirects_are_followed_without_the_registry_credentials(playbook):
    with Registry(auth="htpasswd") as source, Registry() as target:
        push_image(source.url, "team/app", "1", auth=source.auth_tuple, layers=2)
        with BlobStore(source) as store, Proxy(source, fault=redirect_blobs(store)) as proxy:
            credentials = {"username": source.username, "password": source.password}
            run = playbook(play(
                task("inspect", "docker_manifest_info", images=[f"{proxy.host}/team/app:1"], config=True,
                     **credentials),
                task("copy", "docker_manifest_create", name=f"{target.host}/mirror/app:1",
                     sources=[f"{proxy.host}/team/app:1"],
                     registry_credentials=[{"registry": proxy.host, **credentials}]),
            ))
    assert run.rc == 0, run.output
    assert run.result("inspect")["images"][0]["config"]["layers"] == 2
    assert run.result("copy")["copied"]["blobs_copied"] == 3      # config and two layers, through the store
    assert len(store.requests) >= 4
    assert all("Authorization" not in r["headers"] and "authorization" not in r["headers"] for r in store.requests)


def test_bytes_from_the_redirect_target_are_still_verified(playbook):
    with Registry() as source, Registry() as target:
        push_image(source.url, "team/app", "1")
        with BlobStore(source, corrupt=True) as store, Proxy(source, fault=redirect_blobs(store)) as proxy:
            run = playbook(play(
                task("inspect", "docker_manifest_info", images=[f"{proxy.host}/team/app:1"], config=True),
                task("copy", "docker_manifest_create", name=f"{target.host}/mirror/app:1", ignore_errors=True,
                     sources=[f"{proxy.host}/team/app:1"]),
            ))
    facts = run.result("inspect")["images"][0]
    assert facts["error"]["code"] in ("DIGEST_MISMATCH", "SIZE_INVALID"), facts["error"]
    copy = run.result("copy")
    assert copy["failed"] is True and "digest" in copy["msg"], copy["msg"]

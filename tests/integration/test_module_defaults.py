"""The action group ``archfleet.multiarch.registry`` (meta/runtime.yml): registry options set once with
``module_defaults`` reach both registry modules, and a task's own option wins over the default.

The registry is HTTPS with a throwaway CA and htpasswd auth, so a task only succeeds when it got both
the credentials and ``insecure_registries`` from the defaults.
"""
from __future__ import annotations

import pytest

import json

from harness.ansible_run import play, task
from harness.images import push_image
from harness.registry import Registry

GROUP = "group/archfleet.multiarch.registry"


@pytest.fixture(scope="module")
def private_registry():
    with Registry(auth="htpasswd", tls=True) as registry:
        registry.image = push_image(registry.url, "defaults/base", "amd64", auth=registry.auth_tuple,
                                    verify=registry.verify)
        yield registry


def test_module_defaults_group_reaches_both_registry_modules(playbook, private_registry):
    registry = private_registry
    h = registry.host
    defaults = {GROUP: {"username": registry.username, "password": registry.password,
                        "insecure_registries": [h], "retries": 0, "timeout": 10}}
    run = playbook(play(
        dict(task("inspect", "docker_manifest_info", images=[f"{h}/defaults/base:amd64"]), register="inspected"),
        task("publish", "docker_manifest_create", name=f"{h}/defaults/app:1", sources=[f"{h}/defaults/base:amd64"]),
        task("inspect the published index", "docker_manifest_info", images=[f"{h}/defaults/app:1"]),
        # The task's own option wins: without insecure_registries the CA is unknown.
        task("inspect verifying the certificate", "docker_manifest_info", ignore_errors=True,
             images=[f"{h}/defaults/base:amd64"], insecure_registries=[]),
        module_defaults=defaults))
    assert run.rc == 0, run.output
    inspected = run.result("inspect")
    assert inspected["images"][0]["exists"] is True
    assert inspected["images"][0]["digest"] == registry.image["digest"]
    published = run.result("publish")
    assert published["changed"] is True
    index = run.result("inspect the published index")["images"][0]
    assert index["kind"] == "index" and index["digest"] == published["digest"]
    assert [m["digest"] for m in index["manifests"]] == [registry.image["digest"]]
    refused = run.result("inspect verifying the certificate")
    assert refused["failed"] is True and "certificate" in refused["msg"], refused["msg"]
    assert registry.password not in run.output


def test_without_module_defaults_the_same_tasks_fail(playbook, private_registry):
    h = private_registry.host
    run = playbook(play(task("inspect", "docker_manifest_info", ignore_errors=True,
                             images=[f"{h}/defaults/base:amd64"], retries=0)))
    assert run.result("inspect")["failed"] is True


def test_publish_manifests_takes_the_group_defaults_it_does_not_set(playbook, private_registry, tmp_path):
    """The role's registry options left empty leave the play's module_defaults in force (insecure_registries
    included: an empty publish_manifests_insecure_registries used to override the group's list)."""
    registry, h = private_registry, private_registry.host
    arm64 = push_image(registry.url, "defaults/base", "arm64", platform="linux/arm64", auth=registry.auth_tuple,
                       verify=registry.verify)
    hosts = {}
    for name, platform, pushed in (("builder-amd64", "linux/amd64", registry.image), ("builder-arm64", "linux/arm64", arm64)):
        hosts[name] = {"build_images_results": [{
            "platform": platform, "digest": pushed["digest"], "image": "app", "host": name,
            "repository": f"{h}/defaults/base", "tag": "build", "reference": f"{h}/defaults/base@{pushed['digest']}"}]}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": hosts, "vars": {"ansible_connection": "local"}}}))
    defaults = {GROUP: {"username": registry.username, "password": registry.password,
                        "insecure_registries": [h], "retries": 0, "timeout": 10}}
    run = playbook(play({"name": "publish", "ansible.builtin.include_role": {"name": "archfleet.multiarch.publish_manifests"}},
                        hosts="all", vars={"publish_manifests_name": f"{h}/defaults/role:1"}, module_defaults=defaults),
                   inventory=str(inventory))
    assert run.rc == 0, run.output
    published = run.result("archfleet.multiarch.publish_manifests : Publish the index, pinned by digest")
    assert published["changed"] is True and published["platforms"] == ["linux/amd64", "linux/arm64"]

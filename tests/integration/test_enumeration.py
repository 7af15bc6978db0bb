"""docker_manifest_info over repositories and a registry catalog, and digest-only inspection: tags listed with the
tags API, one manifest HEAD per matched tag and no manifest GET, a missing repository as a fact."""
from __future__ import annotations

from harness.ansible_run import play, task
from harness.images import push_image
from harness.proxy import Proxy
from harness.registry import Registry


def test_catalog_and_repositories_digest_only(playbook):
    with Registry() as registry:
        pushed = {}
        for repo in ("team/app", "team/worker", "other/tool"):
            for tag in ("1.0.0", "1.2.0", "1.10.0", "latest", "1.10.0-debug"):
                pushed[(repo, tag)] = push_image(registry.url, repo, tag, payload=f"{repo}:{tag}".encode())["digest"]
        with Proxy(registry) as proxy:
            h = proxy.host
            run = playbook(play(task("digests", "docker_manifest_info", digest_only=True, catalog=[{
                "registry": h, "repositories": ["^team/"], "include": [r"^\d"], "exclude": ["-debug$"], "limit": 2}],
                repositories=[f"{h}/nothing/here", {"name": f"{h}/other/tool", "include": ["^latest$"]}])))
            log = list(proxy.log)
    assert run.rc == 0, run.output
    result = run.result("digests")
    # Repositories first, in the order given, then the catalog's, sorted; tags in version order.
    assert [i["canonical"] for i in result["images"]] == [
        f"{h}/other/tool:latest", f"{h}/team/app:1.2.0", f"{h}/team/app:1.10.0", f"{h}/team/worker:1.2.0",
        f"{h}/team/worker:1.10.0"]
    for image in result["images"]:
        repo, tag = image["canonical"][len(h) + 1:].split(":")
        assert image["digest"] == pushed[(repo, tag)] and image["exists"] is True
        assert sorted(image) == ["canonical", "digest", "exists", "media_type", "reference", "size"]
    assert result["repositories"][0] == {"name": f"{h}/nothing/here", "exists": False, "tags": 0, "matched": []}
    manifests = [entry for entry in log if entry.kind == "manifest"]
    assert len(manifests) == len(result["images"]) and {entry.method for entry in manifests} == {"HEAD"}


def test_repositories_with_full_facts(playbook, open_registry):
    h = open_registry.host
    run = playbook(play(task("facts", "docker_manifest_info", repositories=[{"name": f"{h}/fixtures/multi"}],
                             require_platforms=["linux/amd64"])))
    assert run.rc == 0, run.output
    images = run.result("facts")["images"]
    assert images and all(image["kind"] in ("index", "image") and image["missing_platforms"] == [] for image in images)

"""Credentials as Podman and Docker keep them: the containers auth.json, and per-registry credentials
for a copy between two registries with different users, never shown even at -vvv."""
from __future__ import annotations

import base64
import json

from harness.ansible_run import play, task
from harness.images import push_image
from harness.registry import Registry


def test_a_copy_between_registries_with_their_own_credentials(playbook, tmp_path):
    with Registry(auth="htpasswd", users={"reader": "Source-Pw-91x"}) as source, \
            Registry(auth="htpasswd", users={"writer": "Target-Pw-37q"}) as target:
        push_image(source.url, "team/app", "1", auth=source.auth_tuple)
        credentials = [{"registry": source.host, "username": "reader", "password": "Source-Pw-91x"},
                       {"registry": target.host, "username": "writer",
                        "password": "Target-Pw-37q"}]
        run = playbook(play(task("copy", "docker_manifest_create", name=f"{target.host}/mirror/app:1",
                                 sources=[f"{source.host}/team/app:1"], registry_credentials=credentials)),
                       verbosity=3, env={"REGISTRY_AUTH_FILE": str(tmp_path / "none.json")})
    assert run.rc == 0, run.output
    result = run.result("copy")
    assert result["copied"]["blobs_copied"] > 0 and result["platforms"] == ["linux/amd64"]
    text = run.output + run.stderr + json.dumps(run.tasks)
    for secret in ("Source-Pw-91x", "Target-Pw-37q"):
        assert secret not in text
        assert base64.b64encode(f"x:{secret}".encode()).decode()[4:] not in text


def test_credentials_from_the_containers_auth_json(playbook, tmp_path):
    with Registry(auth="htpasswd", users={"podman": "Podman-Pw-55k"}) as registry:
        push_image(registry.url, "team/app", "1", auth=registry.auth_tuple)
        auth_file = tmp_path / "auth.json"
        token = base64.b64encode(b"podman:Podman-Pw-55k").decode()
        auth_file.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
        args = dict(images=[f"{registry.host}/team/app:1"], docker_config=str(tmp_path / "empty.json"))
        (tmp_path / "empty.json").write_text("{}")
        found = playbook(play(task("inspect", "docker_manifest_info", **args)),
                         env={"REGISTRY_AUTH_FILE": str(auth_file)})
        missing = playbook(play(task("inspect", "docker_manifest_info", ignore_errors=True, **args)),
                           env={"REGISTRY_AUTH_FILE": str(tmp_path / "absent.json")})
    assert found.rc == 0, found.output
    assert found.result("inspect")["images"][0]["exists"] is True
    assert "no credentials were found" in missing.result("inspect")["msg"]
    assert "Podman-Pw-55k" not in found.output + missing.output

"""The image_digest lookup through real ansible-playbook against real registries: one manifest HEAD per
term and no GET, lists with query, missing images, the registry options, and every documented example."""
from __future__ import annotations

import ast
import json

import pytest
import yaml

from harness.ansible_run import COLLECTION_ROOT, play
from harness.images import push_image
from harness.proxy import Proxy
from harness.registry import Registry

LOOKUP = "archfleet.multiarch.image_digest"
PLUGIN = COLLECTION_ROOT / "plugins" / "lookup" / "image_digest.py"


def debug(title: str, expression: str, **keys) -> dict:
    return {"name": title, "ansible.builtin.debug": {"msg": "{{ %s }}" % expression}, **keys}


def lookup(*terms: str, function: str = "lookup", **options) -> str:
    arguments = [repr(LOOKUP), *(repr(term) for term in terms)] + [f"{name}={value!r}" for name, value in options.items()]
    return f"{function}({', '.join(arguments)})"


def test_digests_with_one_head_each_and_no_get(playbook, open_registry):
    fx = open_registry.fixtures
    with Proxy(open_registry) as proxy:
        h = proxy.host
        multi, single = f"{h}/fixtures/multi:latest", f"{h}/fixtures/single:amd64"
        run = playbook(play(
            debug("one", lookup(multi)),
            debug("several as a list", lookup(multi, single, function="query")),
            debug("several joined by lookup", lookup(multi, single)),
            debug("a list as one term", "query(%r, images)" % LOOKUP, vars={"images": [single, multi]}),
            debug("pinned reference", lookup(multi, output="reference")),
            debug("by digest", lookup(f"{h}/fixtures/multi@{fx['multi']['digest']}")),
            debug("missing with a default", lookup(f"{h}/fixtures/single:nope", multi, default="", function="query")),
            debug("missing", lookup(f"{h}/fixtures/single:nope"), ignore_errors=True),
            debug("missing repository", lookup(f"{h}/fixtures/no-such-repo:1"), ignore_errors=True),
            debug("bad reference", lookup("Uppercase/App:1"), ignore_errors=True),
            debug("bad option", lookup(multi, retries=99), ignore_errors=True),
            debug("username without password", lookup(multi, username="ci"), ignore_errors=True),
        ))
        log = list(proxy.log)
    assert run.rc == 0, run.output

    def message(title):
        return run.result(title)["msg"]

    assert message("one") == fx["multi"]["digest"]
    assert message("several as a list") == [fx["multi"]["digest"], fx["single_amd64"]["digest"]]
    assert message("several joined by lookup") == f"{fx['multi']['digest']},{fx['single_amd64']['digest']}"
    assert message("a list as one term") == [fx["single_amd64"]["digest"], fx["multi"]["digest"]]
    assert message("pinned reference") == f"{h}/fixtures/multi:latest@{fx['multi']['digest']}"
    assert message("by digest") == fx["multi"]["digest"]
    assert message("missing with a default") == ["", fx["multi"]["digest"]]
    assert f"image_digest: {h}/fixtures/single:nope does not exist (no such tag or repository in registry {h})" \
        in message("missing")
    assert f"image_digest: {h}/fixtures/no-such-repo:1 does not exist" in message("missing repository")
    assert "image_digest: terms[0]:" in message("bad reference")
    assert "image_digest: retries must be between 0 and 20, got 99" in message("bad option")
    assert "image_digest: parameters are required together: username, password" in message("username without password")
    # A digest costs no pull: every manifest request was a HEAD, but for the one GET that confirms each
    # HEAD answered 404 before the image is called missing (registries whose HEAD says 404 wrongly exist).
    manifest_requests = [entry for entry in log if entry.kind == "manifest"]
    heads_404 = [(e.path) for e in manifest_requests if e.method == "HEAD" and e.status == 404]
    gets = [(e.path) for e in manifest_requests if e.method == "GET"]
    assert manifest_requests and sorted(gets) == sorted(heads_404) and all(e.status == 404 for e in manifest_requests
                                                                           if e.method == "GET")
    assert proxy.writes == 0


@pytest.fixture(scope="module")
def example_registries():
    """registry.example.com: an open registry; registry.lan:5000: HTTPS with htpasswd user ci."""
    with Registry() as public, Registry(auth="htpasswd", tls=True, users={"ci": "ci-Pw-5ecret-Lk2"}) as private:
        pushed = {name: push_image(public.url, f"team/{name}", "1.4", platform="linux/amd64",
                                   payload=name.encode()) for name in ("app", "worker")}
        yield public, private, pushed


def test_every_documented_example_runs(playbook, example_registries):
    public, private, pushed = example_registries
    text = ast.literal_eval(next(node.value for node in ast.parse(PLUGIN.read_text()).body
                                 if isinstance(node, ast.Assign) and node.targets[0].id == "EXAMPLES"))
    text = (text.replace("registry.example.com", public.host).replace("registry.lan:5000", private.host)
            .replace("/etc/ssl/registry-ca.pem", str(private.ca_path)))
    tasks = yaml.safe_load(text)
    run = playbook(play(*tasks), extra_vars={"registry_password": private.password}, verbosity=3)
    assert run.rc == 0, run.output
    app = pushed["app"]["digest"]
    assert run.result("Pin the release image by digest")["ansible_facts"]["app_digest"] == app
    assert run.result("The image pinned, ready for a container definition")["msg"] == \
        f"{public.host}/team/app:1.4@{app}"
    assert run.result("Several images at once, as a list")["ansible_facts"]["pinned"] == [app, pushed["worker"]["digest"]]
    assert run.result("A private registry with a self-signed certificate; a missing image gives an empty string")[
        "msg"] == ""
    assert private.password not in run.output + json.dumps(run.tasks)

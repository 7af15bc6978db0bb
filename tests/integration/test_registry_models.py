"""The collection against models of registries that cannot run here (harness.models), through real
ansible-playbook. Each test names the public report or documentation its registry behaviour comes from;
the asserted values are the contract of issue 18 (the right behaviour), not what the client does today."""
from __future__ import annotations

import base64
import json
import os
import stat

import subprocess

import pytest

from harness.ansible_run import play, task
from harness.images import PushClient, push_index
from harness.models import (GITLAB_KNOWN, Acr, AnonymousReads, ArtifactRegistry, Artifactory, DockerHub, Ecr, Ghcr,
                            GitLab, Harbor, Lscr, Model, NoDelete, NoReferrersApi, Nexus, Quay)
from harness.referrers import build_supply_chain, push_artifact, push_tag_schema

LOOKUP = "archfleet.multiarch.image_digest"
TIMEOUT = 240          # seconds per playbook: a client that hangs on a model fails its test, not the suite
MISSING = "does not exist or no pull access"
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x",
             "linux/riscv64", "linux/386", "linux/mips64le", "linux/arm/v6"]


@pytest.fixture
def playbook(playbook):
    """The conftest ``playbook``, with a timeout that fails the test in one sentence."""
    def run(*args, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        try:
            return playbook(*args, **kwargs)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ansible-playbook did not finish within {kwargs['timeout']} s against the model")
    return run


def debug(title: str, expression: str, **keys) -> dict:
    return {"name": title, "ansible.builtin.debug": {"msg": "{{ %s }}" % expression}, **keys}


def lookup(*terms: str, **options) -> str:
    arguments = [repr(LOOKUP), *(repr(term) for term in terms)] + [f"{k}={v!r}" for k, v in options.items()]
    return f"lookup({', '.join(arguments)})"


def no_config(tmp_path) -> dict:
    """Options and environment that keep the user's own docker config and auth.json out of a run."""
    empty = tmp_path / "empty-config.json"
    empty.write_text("{}")
    return {"docker_config": str(empty)}


def isolated_env(tmp_path) -> dict:
    return {"REGISTRY_AUTH_FILE": str(tmp_path / "no-auth.json"), "DOCKER_CONFIG": str(tmp_path / "no-docker")}


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


# -- 1. Docker Hub: a mistyped repository is a fact ---------------------------------------------------------
@pytest.fixture(scope="module")
def hub():
    with DockerHub() as model:
        model.images = {f"library/app{i}": model.push(f"library/app{i}", "1", platform=PLATFORMS[i])
                        for i in range(9)}
        yield model


def test_docker_hub_mistyped_repository_is_a_fact_not_a_failed_audit(playbook, hub, tmp_path):
    """Docker Hub grants an anonymous pull token for any repository (docker/hub-feedback#1771), then answers a
    missing or mistyped one with 401 insufficient_scope (distribution/distribution#1291,
    jupyterhub/binderhub#1664): nine images are reported, the mistyped one is a DENIED fact, and the whole
    task does not fail (as docker says: "does not exist or may require 'docker login'")."""
    h = hub.host
    references = [f"{h}/{repo}:1" for repo in hub.images]
    mistyped = f"{h}/library/apq1:1"
    references.insert(4, mistyped)
    options = no_config(tmp_path)
    run = playbook(play(
        task("audit", "docker_manifest_info", images=references, **options),
        task("digests", "docker_manifest_info", images=references, digest_only=True, **options),
    ), env=isolated_env(tmp_path))
    assert run.rc == 0, run.output
    for title in ("audit", "digests"):
        images = run.result(title)["images"]
        assert len(images) == 10
        by_reference = {image["reference"]: image for image in images}
        for repo, pushed in hub.images.items():
            image = by_reference[f"{h}/{repo}:1"]
            assert image["exists"] is True and image["digest"] == pushed["digest"], (title, image)
        fact = by_reference[mistyped]
        assert fact["exists"] is None, (title, fact)
        assert fact["error"]["code"] == "DENIED", (title, fact)
        assert MISSING in fact["error"]["message"], (title, fact)


def test_docker_hub_mistyped_repository_in_the_lookup(playbook, hub, tmp_path):
    """The same Docker Hub answer (distribution/distribution#1291, jupyterhub/binderhub#1664) through the
    image_digest lookup: ``default`` is returned; without a default the lookup fails saying what docker says."""
    h = hub.host
    mistyped = f"{h}/library/apq1:1"
    config = no_config(tmp_path)["docker_config"]
    run = playbook(play(
        debug("with default", lookup(mistyped, default="x", docker_config=config)),
        debug("existing", lookup(f"{h}/library/app0:1", docker_config=config)),
        debug("without default", lookup(mistyped, docker_config=config), ignore_errors=True),
    ), env=isolated_env(tmp_path))
    assert run.result("with default")["msg"] == "x", run.output
    assert run.result("existing")["msg"] == hub.images["library/app0"]["digest"], run.output
    failed = run.result("without default")
    assert failed.get("failed") is True and MISSING in failed["msg"], failed


def test_docker_hub_rate_limit_headers_do_not_disturb_inspection(playbook, hub, tmp_path):
    """Docker Hub sends ratelimit-limit / ratelimit-remaining / docker-ratelimit-source on manifest answers and
    counts GETs, not HEADs (docs.docker.com/docker-hub/usage/pulls): digest_only spends no pull."""
    hub.reset()
    pulls_before = hub.pulls
    references = [f"{hub.host}/{repo}:1" for repo in hub.images]
    run = playbook(play(task("digests", "docker_manifest_info", images=references, digest_only=True,
                             **no_config(tmp_path))), env=isolated_env(tmp_path))
    assert run.rc == 0, run.output
    assert all(image["exists"] is True for image in run.result("digests")["images"])
    assert hub.pulls == pulls_before
    assert hub.count("GET", "manifest") == 0


# -- 2. Nexus: HEAD 404, GET 200 -----------------------------------------------------------------------------
HEAD_404_MODELS = {
    "Nexus (andrey-pohilko/registry-cli#43)": Nexus,
    "Harbor set-up (crossplane/crossplane#3223)": lambda: Harbor(head_404=True),
}


@pytest.mark.parametrize("registry", sorted(HEAD_404_MODELS))
def test_nexus_head_404_is_confirmed_by_a_get_and_learnt_once(playbook, tmp_path, registry):
    """Nexus answers a manifest HEAD with 404 while the GET works (andrey-pohilko/registry-cli#43 and #14,
    crazy-max/diun#1614; some Harbor set-ups too, crossplane/crossplane#3223): digest_only and the lookup
    report the existing tags with their digests, and over six references only one HEAD ever gets the 404."""
    with HEAD_404_MODELS[registry]() as nexus:
        images = {f"team/app{i}": nexus.push(f"team/app{i}", "1", platform=PLATFORMS[i]) for i in range(6)}
        h = nexus.host
        user, password = next(iter(nexus.users.items()))
        credentials = {"username": user, "password": password}
        references = [f"{h}/{repo}:1" for repo in images]
        nexus.reset()
        run = playbook(play(task("digests", "docker_manifest_info", images=references, digest_only=True,
                                 **credentials)))
        head_404 = nexus.count("HEAD", "manifest", 404)
        looked_up = playbook(play(
            debug("lookup", lookup(references[0], username=user, password=password)),
            debug("lookup with default", lookup(references[1], default="x", username=user, password=password))))
    assert run.rc == 0, run.output
    for image, (repo, pushed) in zip(run.result("digests")["images"], images.items()):
        assert image["exists"] is True and image["digest"] == pushed["digest"], image
    assert head_404 == 1, f"{head_404} manifest HEADs answered 404 over {len(references)} references"
    assert looked_up.result("lookup")["msg"] == images["team/app0"]["digest"], looked_up.output
    assert looked_up.result("lookup with default")["msg"] == images["team/app1"]["digest"], looked_up.output


@pytest.mark.parametrize("registry", sorted(HEAD_404_MODELS))
def test_nexus_publish_and_unchanged_rerun(playbook, registry):
    """Publishing from sources on a registry whose manifest HEADs answer 404 (andrey-pohilko/registry-cli#43,
    crossplane/crossplane#3223) works, and an unchanged re-run reports changed false (no "does not exist")."""
    with HEAD_404_MODELS[registry]() as nexus:
        for i, platform in enumerate(PLATFORMS[:2]):
            nexus.push("builds/app", f"1-{i}", platform=platform)
        h = nexus.host
        user, password = next(iter(nexus.users.items()))
        publish = dict(name=f"{h}/team/app:1", sources=[f"{h}/builds/app:1-0", f"{h}/builds/app:1-1"],
                       username=user, password=password)
        run = playbook(play(task("publish", "docker_manifest_create", **publish),
                            task("again", "docker_manifest_create", **publish)))
        published = nexus.resolve("team/app", "1")
    assert run.rc == 0, run.output
    assert run.result("publish")["changed"] is True
    assert run.result("publish")["digest"] == published
    assert run.result("again")["changed"] is False, run.result("again")


# -- 3. lscr.io redirecting to GHCR --------------------------------------------------------------------------
def test_lscr_redirect_to_ghcr_with_per_host_tokens(playbook, tmp_path):
    """lscr.io answers with 307 to ghcr.io, which challenges for itself (google/go-containerregistry#2333,
    #2359; nicholas-fedor/watchtower#359): inspection, digest_only, the lookup and a mirror all work; the
    credentials given for lscr never reach the GHCR host, and GHCR's tokens never reach lscr or the target."""
    with Ghcr() as ghcr, Lscr(ghcr) as lscr, Model(scheme=None, title="target") as target:
        children = [ghcr.push("linuxserver/app", platform=p, layers=2) for p in PLATFORMS[:2]]
        pushed = push_index(ghcr.backend.url, "linuxserver/app", "1", children)   # an index: a mirror keeps its digest
        source = f"{lscr.host}/linuxserver/app:1"
        lscr_user, lscr_password = "lscr-user", "Lscr-Secret-Pw-9"
        credentials = [{"registry": lscr.host, "username": lscr_user, "password": lscr_password}]
        options = dict(registry_credentials=credentials, **no_config(tmp_path))
        run = playbook(play(
            task("inspect", "docker_manifest_info", images=[source], config=True, **options),
            task("digests", "docker_manifest_info", images=[source], digest_only=True, **options),
            debug("lookup", lookup(source, registry_credentials=credentials, **no_config(tmp_path))),
            task("mirror", "docker_manifest_create", name=f"{target.host}/mirror/app:1", sources=[source],
                 **options),
        ), env=isolated_env(tmp_path))
        mirrored = target.resolve("mirror/app", "1")
        ghcr_seen, lscr_seen, target_seen = ghcr.requests, lscr.requests, target.requests
        tokens = list(ghcr.issued)
    assert run.rc == 0, run.output
    assert run.result("inspect")["images"][0]["digest"] == pushed["digest"]
    assert run.result("digests")["images"][0]["digest"] == pushed["digest"]
    assert run.result("lookup")["msg"] == pushed["digest"]
    assert mirrored == pushed["digest"]
    secret = basic(lscr_user, lscr_password)
    for seen in ghcr_seen:
        header_text = json.dumps(seen.headers)
        assert secret not in header_text and lscr_password not in header_text, seen
        assert not seen.authorization.lower().startswith("basic"), seen
    assert any(seen.authorization.startswith("Bearer ") for seen in ghcr_seen), "GHCR never got its token"
    for seen in lscr_seen + target_seen:
        assert not any(token in seen.authorization for token in tokens), seen
    for seen in ghcr_seen:
        if seen.authorization.startswith("Bearer "):
            assert seen.authorization.split(" ", 1)[1] in tokens, seen


# -- 4. open ping, challenged writes --------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_open_ping_challenged_writes(playbook, tmp_path, scheme):
    """A registry whose /v2/ ping and reads are open and whose writes are challenged (moby/moby#12972 with
    Basic behind nginx, nexspence/nexspence#260 with Bearer): the task's credentials are sent after the 401;
    a wrong password is "not accepted"; no credentials at all is "no credentials were found", never "not
    accepted"."""
    with AnonymousReads(scheme=scheme) as model:
        model.push("builds/app", "amd64", platform="linux/amd64")
        model.push("builds/app", "arm64", platform="linux/arm64")
        h = model.host
        user, password = next(iter(model.users.items()))
        publish = dict(sources=[f"{h}/builds/app:amd64", f"{h}/builds/app:arm64"], **no_config(tmp_path))
        run = playbook(play(
            task("right", "docker_manifest_create", name=f"{h}/team/app:1", username=user, password=password,
                 **publish),
            task("wrong", "docker_manifest_create", name=f"{h}/team/app:2", username=user,
                 password="not-the-password", ignore_errors=True, **publish),
            task("none", "docker_manifest_create", name=f"{h}/team/app:3", ignore_errors=True, **publish),
        ), env=isolated_env(tmp_path))
        published = model.resolve("team/app", "1")
        others = [model.resolve("team/app", tag) for tag in ("2", "3")]
    right, wrong, none = (run.result(title) for title in ("right", "wrong", "none"))
    assert right.get("failed") is not True, right
    assert right["digest"] == published
    assert wrong.get("failed") is True and "were not accepted" in wrong["msg"] and user in wrong["msg"], wrong
    assert none.get("failed") is True and "no credentials were found" in none["msg"], none
    assert "were not accepted" not in none["msg"], none
    assert others == [None, None]


# -- 5. referrers endpoints that are neither 200 nor 404; DELETE unsupported ---------------------------------
REFERRERS_MODELS = {
    "400 (quay/quay#3071)": lambda: NoReferrersApi(400),
    "405 (aws/containers-roadmap#2783)": lambda: NoReferrersApi(405),
    "406 Artifactory (google/go-containerregistry#2026)": lambda: NoReferrersApi(406),
    "500 (opencontainers/opencontainers.org#152)": lambda: NoReferrersApi(500),
    "401 without challenge, Harbor 2.7 (goharbor/harbor#18305)": Harbor,
}


@pytest.mark.parametrize("answer", sorted(REFERRERS_MODELS))
def test_referrers_endpoint_without_the_api_falls_back(playbook, tmp_path, answer):
    """Registries without the Referrers API answer its endpoint with 400 (quay/quay#3071), 405
    (aws/containers-roadmap#2783), 406 (Artifactory, google/go-containerregistry#2026), 500 (the "similar error
    code" of opencontainers/opencontainers.org#152) or 401 without a challenge (Harbor 2.7,
    goharbor/harbor#18305, regclient/regclient#389): the tag-schema and cosign-tag referrers are still
    reported, and the task does not fail."""
    with REFERRERS_MODELS[answer]() as model:
        fx = build_supply_chain(model.backend)
        repo, h = fx["repo"], model.host
        credentials = {}
        if model.scheme:
            user, password = next(iter(model.users.items()))
            credentials = {"username": user, "password": password}
        run = playbook(play(task("inspect", "docker_manifest_info", referrers=True, **credentials,
                                 images=[f"{h}/{repo}:signed", f"{h}/{repo}:cosign"], **no_config(tmp_path))),
                       env=isolated_env(tmp_path))
        asked = sum(1 for seen in model.requests if "/referrers/" in seen.path)
    assert run.rc == 0, run.output
    signed, cosign = run.result("inspect")["images"]
    assert "error" not in signed and "error" not in cosign, (signed.get("error"), cosign.get("error"))
    assert [(r["digest"], r["source"]) for r in signed["referrers"]] == [
        (fx["signed"]["signature"]["digest"], "tag-schema"), (fx["signed"]["sbom"]["digest"], "tag-schema")]
    assert [(r["tag"], r["source"]) for r in cosign["referrers"]] == [
        (fx["cosign"]["sig"]["tag"], "cosign-tag"), (fx["cosign"]["att"]["tag"], "cosign-tag")]
    assert asked >= 1


DELETE_MODELS = {
    "Docker Hub 405 UNSUPPORTED (docker/hub-feedback#1759)": DockerHub,
    "distribution, delete disabled (distribution/distribution#1222)": NoDelete,
}


@pytest.mark.parametrize("answer", sorted(DELETE_MODELS))
def test_delete_unsupported_fails_in_one_sentence_and_leaves_the_registry_as_it_was(playbook, tmp_path, answer):
    """DELETE refused with 405 UNSUPPORTED (Docker Hub: docker/hub-feedback#1759, #2360; distribution with
    delete disabled: distribution/distribution#1222): state=absent fails with one sentence naming the answer,
    the tag still resolves to the same digest, and no throw-away manifest is left behind (the trap of
    regclient/regclient#819)."""
    with DELETE_MODELS[answer]() as model:
        pushed = model.push("team/app", "rc1")
        before = model.manifest_revisions()
        user, password = next(iter(model.users.items()))
        run = playbook(play(task("absent", "docker_manifest_create", name=f"{model.host}/team/app:rc1",
                                 state="absent", username=user, password=password, ignore_errors=True,
                                 **no_config(tmp_path))), env=isolated_env(tmp_path))
        after = model.manifest_revisions()
        still = model.resolve("team/app", "rc1")
        puts = model.count("PUT", "manifest")
    result = run.result("absent")
    assert result.get("failed") is True, result
    message = result["msg"]
    assert "\n" not in message.strip(), message
    assert "405" in message or "unsupported" in message.lower(), message
    assert still == pushed["digest"]
    assert after == before, sorted(after - before)
    assert puts == 0


# -- 6. the ecosystem's user names ----------------------------------------------------------------------------
def _read(playbook, model, tmp_path, env=None, **options):
    pushed = model.push("team/app", "1")
    run = playbook(play(task("read", "docker_manifest_info", images=[f"{model.host}/team/app:1"], **options)),
                   env=dict(isolated_env(tmp_path), **(env or {})))
    assert run.rc == 0, run.output
    image = run.result("read")["images"][0]
    assert image["exists"] is True and image["digest"] == pushed["digest"], image
    return run


def test_quay_robot_account(playbook, tmp_path):
    """Quay robot accounts log in as ``org+name`` with their token (Red Hat Quay docs, creating robot
    accounts), through the realm /v2/auth on the registry host (oras-project/oras#738); repositories are
    private (no anonymous pull)."""
    with Quay() as quay:
        robot, token = next(iter(quay.users.items()))
        _read(playbook, quay, tmp_path, username=robot, password=token, **no_config(tmp_path))
        assert any(account == robot for account, _scopes in quay.token_requests)


def test_ecr_aws_user_from_the_ecr_login_credential_helper(playbook, tmp_path):
    """ECR: user ``AWS`` with a 12-hour token over Basic auth, handed over by the ``ecr-login`` credential
    helper named in config.json's credHelpers (AWS ECR user guide, registry_auth.html)."""
    with Ecr() as ecr:
        user, secret = next(iter(ecr.users.items()))
        helpers = tmp_path / "bin"
        helpers.mkdir()
        helper = helpers / "docker-credential-ecr-login"
        helper.write_text("#!/bin/sh\nread server\n"
                          f"printf '%s' '{json.dumps({'ServerURL': ecr.host, 'Username': user, 'Secret': secret})}'\n")
        helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
        config = tmp_path / "docker" / "config.json"
        config.parent.mkdir()
        config.write_text(json.dumps({"credHelpers": {ecr.host: "ecr-login"}}))
        _read(playbook, ecr, tmp_path, env={"PATH": f"{helpers}:{os.environ['PATH']}"}, docker_config=str(config))
        assert any(seen.authorization == "Basic " + basic(user, secret) for seen in ecr.requests)


@pytest.mark.parametrize("user", ["oauth2accesstoken", "_json_key"])
def test_artifact_registry_users(playbook, tmp_path, user):
    """Artifact Registry: ``oauth2accesstoken`` with an access token, or ``_json_key`` with the service account
    key JSON as password (cloud.google.com artifact-registry docker authentication, Dokploy/dokploy#3935);
    its Bearer challenge names no service (nicholas-fedor/watchtower#1895)."""
    with ArtifactRegistry() as gar:
        _read(playbook, gar, tmp_path, username=user, password=gar.users[user], **no_config(tmp_path))
        assert any(account == user for account, _scopes in gar.token_requests)


def test_acr_identitytoken_in_docker_config(playbook, tmp_path):
    """ACR: ``az acr login`` leaves an ``identitytoken`` (user 00000000-0000-0000-0000-000000000000) in
    config.json, an OAuth2 refresh token exchanged with POST /oauth2/token grant_type=refresh_token, whose
    answer carries only ``access_token`` (azure.github.io/acr/AAD-OAuth.html)."""
    with Acr() as acr:
        refresh, user = next(iter(acr.refresh_tokens.items()))
        config = tmp_path / "docker" / "config.json"
        config.parent.mkdir()
        config.write_text(json.dumps({"auths": {acr.host: {"auth": basic(user, ""), "identitytoken": refresh}}}))
        _read(playbook, acr, tmp_path, docker_config=str(config))
        posts = [seen for seen in acr.requests if seen.method == "POST" and seen.path.startswith("/oauth2/token")]
        assert posts, [(seen.method, seen.path) for seen in acr.requests]


def test_gitlab_deploy_token_with_the_realm_on_the_gitlab_host(playbook, tmp_path):
    """GitLab: the registry's realm is /jwt/auth on the GitLab host, another host than the registry
    (gitlab-org/gitlab-foss#26265, dotnet/sdk-container-builds#284), service ``container_registry``; a deploy
    token is the password (docs.gitlab.com container registry authentication)."""
    with GitLab() as gitlab:
        user, token = next(iter(gitlab.users.items()))
        _read(playbook, gitlab, tmp_path, username=user, password=token, **no_config(tmp_path))
        assert any(account == user for account, _scopes in gitlab.token_requests)
        assert all(not seen.authorization.lower().startswith("basic") for seen in gitlab.front.seen)


def test_harbor_robot_account(playbook, tmp_path):
    """Harbor robot accounts are named ``robot$project+name`` and get tokens from /service/token
    (goharbor/harbor#714)."""
    with Harbor() as harbor:
        robot, secret = next(iter(harbor.users.items()))
        _read(playbook, harbor, tmp_path, username=robot, password=secret, **no_config(tmp_path))


# -- more behaviours of the sources (values from the README's and issue 18's general rules) -----------------
def test_docker_hub_429_names_the_registry_answer(playbook, tmp_path):
    """Past the pull limit Docker Hub answers manifest GETs with 429 TOOMANYREQUESTS ("You have reached your
    pull rate limit", docs.docker.com/docker-hub/usage/pulls). Issue 18 sets no contract for it; what is
    asserted is the general rule that the registry's answer is named: either the images past the limit carry
    it as a fact (and the others are reported), or the task fails in one sentence that names it."""
    with DockerHub(pull_limit=2) as model:
        pushed = [model.push(f"library/app{i}", "1", platform=PLATFORMS[i]) for i in range(4)]
        references = [f"{model.host}/library/app{i}:1" for i in range(4)]
        run = playbook(play(task("audit", "docker_manifest_info", images=references, retries=0,
                                 ignore_errors=True, **no_config(tmp_path))), env=isolated_env(tmp_path))
    result = run.result("audit")
    if result.get("failed"):
        assert "429" in result["msg"] and "TOOMANYREQUESTS" in result["msg"], result["msg"]
        assert "\n" not in result["msg"].strip(), result["msg"]
        return
    images = result["images"]
    read = [image for image in images if image.get("exists") is True]
    limited = [image for image in images if "error" in image]
    assert len(read) == 2 and len(limited) == 2, images
    assert {image["digest"] for image in read} <= {p["digest"] for p in pushed}
    assert all(image["error"]["code"] == "TOOMANYREQUESTS" for image in limited), limited


def test_quay_refusing_docker_manifests_in_an_oci_index(playbook, tmp_path):
    """Quay before 3.8 refused an OCI index that lists Docker manifests with 400 MANIFEST_INVALID
    (openshift/oc-mirror#253, fixed by quay/quay#1649): the task fails in one sentence naming the registry's
    answer, and the tag is not written."""
    with Quay(refuse_docker_in_oci_index=True) as quay:
        quay.push("builds/app", "amd64", platform="linux/amd64", media="docker")
        quay.push("builds/app", "arm64", platform="linux/arm64", media="docker")
        robot, token = next(iter(quay.users.items()))
        h = quay.host
        run = playbook(play(task("publish", "docker_manifest_create", name=f"{h}/team/app:1", media_type="oci",
                                 sources=[f"{h}/builds/app:amd64", f"{h}/builds/app:arm64"], username=robot,
                                 password=token, ignore_errors=True, **no_config(tmp_path))),
                       env=isolated_env(tmp_path))
        written = quay.resolve("team/app", "1")
    result = run.result("publish")
    assert result.get("failed") is True, result
    assert "MANIFEST_INVALID" in result["msg"] or "manifest invalid" in result["msg"], result["msg"]
    assert "\n" not in result["msg"].strip(), result["msg"]
    assert written is None


def test_gitlab_dash_tag_resolving_to_the_subject_is_not_a_referrer(playbook, tmp_path):
    """GitLab has no Referrers API (404) and resolves a missing ``sha256-<hex>`` tag to the manifest
    ``sha256:<hex>`` itself (oras-project/oras-go#1396): an index without referrers reports none, not its own
    children as referrers."""
    with GitLab(dash_tags_resolve=True) as gitlab:
        children = [gitlab.push("team/app", platform=p) for p in PLATFORMS[:2]]
        index = push_index(gitlab.backend.url, "team/app", "1", children)
        user, token = next(iter(gitlab.users.items()))
        run = playbook(play(task("inspect", "docker_manifest_info", images=[f"{gitlab.host}/team/app:1"],
                                 referrers=True, username=user, password=token, **no_config(tmp_path))),
                       env=isolated_env(tmp_path))
    assert run.rc == 0, run.output
    image = run.result("inspect")["images"][0]
    assert image["digest"] == index["digest"]
    assert image.get("referrers") == [], image.get("referrers")


def test_artifactory_tag_list_link_without_the_repository_key(playbook, tmp_path):
    """Artifactory's tag-list ``Link`` names the next page without the repository's first path component
    (JFrog RTFACT-18971; renovatebot/renovate#20745 and #35917 keep the request's own path and take only
    ``last`` from the link): every tag is still listed, here the newest one on the second page."""
    with Artifactory() as art:
        pushed = art.push("docker-local/app", "1.0.0")
        with PushClient(art.backend.url) as client:
            manifest = client.get_manifest("docker-local/app", "1.0.0").content
            for tag in [f"1.0.{patch}" for patch in range(1, 1001)] + ["2.0.0"]:   # 2.0.0 sorts last: page 2
                client.push_manifest("docker-local/app", tag, manifest, pushed["media_type"])
        user, password = next(iter(art.users.items()))
        run = playbook(play(task("enumerate", "docker_manifest_info", digest_only=True, username=user,
                                 password=password, repositories=[{"name": f"{art.host}/docker-local/app",
                                                                   "limit": 1}], **no_config(tmp_path))),
                       env=isolated_env(tmp_path))
        broken_links = sum(1 for entry in art.log if entry.path.startswith("/v2/app/tags/list"))
        host = art.host
    assert run.rc == 0, run.output
    references = [image["reference"] for image in run.result("enumerate")["images"]]
    assert references == [f"{host}/docker-local/app:2.0.0"], references
    assert broken_links == 0, "the broken next link was followed as it is"


def test_gitlab_refusing_an_unknown_artifact_type_names_the_answer(playbook, tmp_path):
    """GitLab refuses an ``artifactType`` or config media type outside its allowlist with 400 MANIFEST_INVALID
    "unknown media type" (ocx-sh/ocx#480, fluxcd/flux2#3724, grimoire-rs/grimoire#11). Copying an image with a
    referrer of such a type: issue 18's rule, what a registry cannot do is reported in one sentence naming its
    answer (the image itself, an OCI image, is accepted)."""
    custom = "application/vnd.archfleet.custom.v1"
    with Model(scheme=None, title="source") as source, GitLab(known_media_types=GITLAB_KNOWN) as gitlab:
        image = source.push("team/app", "1")
        with PushClient(source.backend.url) as client:
            subject = {"mediaType": image["media_type"], "digest": image["digest"], "size": image["size"]}
            artifact = push_artifact(client, "team/app", custom, subject, b"custom payload\n", custom + ".layer")
            push_tag_schema(client, "team/app", image["digest"], [artifact])
        user, token = next(iter(gitlab.users.items()))
        run = playbook(play(task("copy", "docker_manifest_create", name=f"{gitlab.host}/team/app:1",
                                 sources=[f"{source.host}/team/app:1"], referrers="copy", ignore_errors=True,
                                 registry_credentials=[{"registry": gitlab.host, "username": user, "password": token}],
                                 **no_config(tmp_path))), env=isolated_env(tmp_path))
        refused = [entry for entry in gitlab.log if entry.method == "PUT" and entry.status == 400]
    result = run.result("copy")
    assert refused, "the model never refused anything: the referrer was not copied"
    assert result.get("failed") is True, result
    assert "unknown media type" in result["msg"] and "MANIFEST_INVALID" in result["msg"], result["msg"]
    assert "\n" not in result["msg"].strip(), result["msg"]

"""Every "how to authenticate" example of docs/registries.md's models section, run as written through real
ansible-playbook against the model of its registry (harness.models; issue 18: "a tested example").

Each ```yaml block under a ``### <registry>`` heading is taken from the page; the images it names are pushed
into the model (same repository paths and tags), its registry host becomes the model's, and what it leaves
to the user (``{{ vars }}``, environment, a ``docker_config`` file, the ``gcloud`` or ``docker-credential-*``
it calls) is supplied with the model's credentials. A heading with no runnable example fails, naming it."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.ansible_run import play
from harness.models import Acr, ArtifactRegistry, Artifactory, DockerHub, Ecr, Ghcr, GitLab, Harbor, Nexus, Quay

DOC = Path(__file__).resolve().parents[2] / "docs" / "registries.md"
PREFIX = "archfleet.multiarch."
TIMEOUT = 240
ENV_LOOKUP = re.compile(r"\{\{\s*lookup\('ansible\.builtin\.env',\s*'(\w+)'\)\s*\}\}")
VARIABLE = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")

MODELS = {   # the page's headings -> the model of that registry
    "Docker Hub": DockerHub,
    "GitHub Container Registry (ghcr.io) and lscr.io": Ghcr,
    "Nexus Repository": Nexus,
    "Harbor": Harbor,
    "Quay (quay.io and Red Hat Quay)": Quay,
    "Amazon ECR": Ecr,
    "Google Artifact Registry": ArtifactRegistry,
    "Azure Container Registry": Acr,
    "GitLab container registry": GitLab,
    "JFrog Artifactory": Artifactory,
}
NOT_A_REGISTRY = {"Registries that challenge only writes, refuse DELETE, or lack the Referrers API"}


def examples() -> list:
    """One pytest param per yaml block of the models section (or per registry heading that has none)."""
    section = DOC.read_text().split("\n## Models of registries", 1)[1].split("\n## ", 1)[0]
    params = []
    for chunk in section.split("\n### ")[1:]:
        heading, body = chunk.split("\n", 1)
        if heading in NOT_A_REGISTRY:
            continue
        blocks = re.findall(r"^```yaml\n(.*?)^```", body, re.S | re.M)
        for number, block in enumerate(blocks or [None], 1):
            name = heading if number == 1 else f"{heading} #{number}"
            params.append(pytest.param(heading, block, id=name))
    return params


# -- what an example leaves to its user, supplied from the model -----------------------------------------
def executable(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def ecr_login_helper(model, bin_dir: Path, config: Path) -> dict:
    """``credHelpers`` naming ``ecr-login`` and a stand-in ``docker-credential-ecr-login`` on PATH."""
    user, secret = next(iter(model.users.items()))
    answer = json.dumps({"ServerURL": model.host, "Username": user, "Secret": secret})
    executable(bin_dir, "docker-credential-ecr-login",
               f"[ \"$1\" = get ] || exit 1\nread server\nprintf '%s' '{answer}'\n")
    config.write_text(json.dumps({"credHelpers": {model.host: "ecr-login"}}))
    return {}


def az_acr_login(model, bin_dir: Path, config: Path) -> dict:
    """What ``az acr login`` leaves in config.json: the null-GUID user and an ``identitytoken``."""
    refresh, user = next(iter(model.refresh_tokens.items()))
    auth = base64.b64encode(f"{user}:".encode()).decode()
    config.write_text(json.dumps({"auths": {model.host: {"auth": auth, "identitytoken": refresh}}}))
    return {}


def gcloud(model, bin_dir: Path, config: Path) -> dict:
    """A stand-in ``gcloud`` whose ``auth print-access-token`` prints the model's access token."""
    executable(bin_dir, "gcloud", '[ "$*" = "auth print-access-token" ] || exit 1\n'
               f"printf '%s\\n' '{model.users['oauth2accesstoken']}'\n")
    return {}


def gitlab_ci_job(model, bin_dir: Path, config: Path) -> dict:
    """The predefined variables of a GitLab CI job (``CI_REGISTRY_IMAGE`` and the job's credentials)."""
    user, token = next(iter(model.users.items()))
    return {"CI_REGISTRY_IMAGE": f"{model.host}/acme/app", "CI_REGISTRY_USER": user, "CI_REGISTRY_PASSWORD": token}


SETUP = {Ecr: ecr_login_helper, Acr: az_acr_login, ArtifactRegistry: gcloud, GitLab: gitlab_ci_job}


def to_model(reference: str, host: str) -> str:
    """``reference`` with its registry host (docker's rule: a first component with '.' or ':') made ``host``."""
    first, slash, rest = reference.partition("/")
    return f"{host}/{rest}" if slash and ("." in first or ":" in first) and "{{" not in first else reference


def split(reference: str) -> tuple[str, str]:
    """``host/repo:tag`` -> (``repo``, ``tag``)."""
    path = reference.split("/", 1)[1]
    repo, _colon, tag = path.rpartition(":")
    return repo, tag


def platform_of(tag: str) -> str:
    return {"arm64": "linux/arm64", "armv7": "linux/arm/v7"}.get(tag.rsplit("-", 1)[-1], "linux/amd64")


# -- the test ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("heading, block", examples())
def test_registry_doc_example(playbook, tmp_path, heading, block):
    assert heading in MODELS, f"docs/registries.md: no model for the heading '### {heading}'"
    assert block is not None, f"docs/registries.md: '### {heading}' has no ```yaml example"
    tasks = yaml.safe_load(block)
    assert isinstance(tasks, list) and tasks, f"'### {heading}': the example is not a list of tasks"
    module_tasks = [(entry, key) for entry in tasks for key in entry if key.startswith(PREFIX)]
    assert len(module_tasks) == len(tasks), f"'### {heading}': a task that is not this collection's module"

    model_class = MODELS[heading]
    usernames = [entry[key].get("username") for entry, key in module_tasks]
    literal_users = {user for user in usernames if user and "{{" not in user}
    knobs = {}
    if literal_users - set(model_class.users):    # the example's own account name, e.g. Nexus's `ci`
        knobs["users"] = {user: f"{user}-Model-Pw-1" for user in literal_users}
    bin_dir, config = tmp_path / "bin", tmp_path / "docker-config" / "config.json"
    bin_dir.mkdir()
    config.parent.mkdir()

    with model_class(**knobs) as model:
        env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "REGISTRY_AUTH_FILE": str(tmp_path / "no-auth.json"),
               "DOCKER_CONFIG": str(tmp_path / "no-docker")}
        env.update(SETUP.get(model_class, lambda *_: {})(model, bin_dir, config))

        def rendered(reference: str) -> str:       # the environment lookups a CI job's example makes
            return ENV_LOOKUP.sub(lambda match: env[match[1]], reference)

        extra_vars, pushed, checks = {}, {}, []
        for entry, key in module_tasks:
            args = entry[key]
            for option in ("images", "sources", "name"):
                if option in args:
                    value = args[option]
                    args[option] = [to_model(r, model.host) for r in value] if isinstance(value, list) \
                        else to_model(value, model.host)
            if "docker_config" in args:
                args["docker_config"] = str(config)
            user = args.get("username")
            if user is not None:
                user_var = VARIABLE.match(user)
                account = next(iter(model.users)) if user_var else user
                if user_var:
                    extra_vars[user_var[1]] = account
                password_var = VARIABLE.match(args.get("password", ""))
                if password_var:
                    extra_vars[password_var[1]] = model.users[account]
            for reference in map(rendered, args.get("images", []) + args.get("sources", [])):
                repo, tag = split(reference)
                pushed[reference] = model.push(repo, tag, platform=platform_of(tag))
            if key == PREFIX + "docker_manifest_info":
                checks.append((entry["name"], entry.get("register"), list(map(rendered, args["images"]))))
            else:
                checks.append((entry["name"], None, rendered(args["name"])))
            if entry.get("register"):
                tasks.append({"name": "registered " + entry["register"],
                              "ansible.builtin.debug": {"var": entry["register"]}})

        try:
            run = playbook(play(*tasks), extra_vars=extra_vars, env=env, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"'### {heading}': ansible-playbook did not finish within {TIMEOUT} s")
        assert run.rc == 0, run.output
        for title, register, target in checks:
            result = run.result(title)
            if isinstance(target, list):           # an info task: each image with its pushed digest
                if register:
                    result = run.result("registered " + register)[register]
                digests = [(image["reference"], image.get("exists"), image.get("digest")) for image in result["images"]]
                assert digests == [(ref, True, pushed[ref]["digest"]) for ref in target], result
            else:                                  # a publish: the tag now names what the task wrote
                assert result["digest"] == model.resolve(*split(target)), result

"""docs/ci.md's pipelines, tested: each file under docs/ci/ is parsed, every command its jobs run is checked, and the
playbooks they call are run for real (issue 22, item 6).

* Parsed as its CI system reads it (YAML): the GitHub Actions workflow (a build matrix, then a publish job), the
  GitLab CI pipeline (parallel:matrix, then a publish stage) and the Travis file (jobs per architecture, then a
  publish stage). docs/ci.md holds each file verbatim.
* Every command is either the set-up (pip, ansible-galaxy collection install, docker login) or an ansible-playbook
  call of one of the collection's playbooks (archfleet.multiarch.<name> = playbooks/<name>.yml) with variables that
  playbook's roles know; none runs multiarch/qemu-user-static, docker build/push or docker manifest.
* Then each pipeline runs here, job after job, as its CI system would expand it (matrix values and variables set in
  the environment): the build jobs' provision and build playbooks against this machine's kernel (binfmt_misc
  lock held), a private dockerd and a registry started by the test, then the publish job, whose multi-arch tag is
  read back from the registry; a second publish changes nothing. Added to each ansible-playbook call, the only
  difference from CI: `-e @overrides.json` with what points at the test's parts (the private dockerd, the plain-HTTP
  registry) and no package installation (the packages are installed on this machine already). Every job runs on
  this x86_64 machine, so the arm64 runner's job builds linux/arm64 under emulation here.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from harness import foreign_binaries as fb
from harness.ansible_run import COLLECTION_ROOT, COLLECTIONS_PATH
from harness.dockerd import Dockerd
from harness.images import ALL_MANIFEST_TYPES, push_image
from harness.registry import Registry

CI_DIR = COLLECTION_ROOT / "docs" / "ci"
CI_DOC = COLLECTION_ROOT / "docs" / "ci.md"
FILES = {"github": "github-actions.yml", "gitlab": "gitlab-ci.yml", "travis": "travis.yml"}
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
SETUP = ("python3 -m pip install --user ansible-core requests jmespath",
         "ansible-galaxy collection install git+https://github.com/archfleet/multiarch.git,main")


def load(system: str) -> dict:
    return yaml.safe_load((CI_DIR / FILES[system]).read_text())


def lines(script) -> list:
    """The shell commands of a `run:`/`script:` value (a string of lines or a list of strings)."""
    items = [script] if isinstance(script, str) else list(script or [])
    return [line.strip() for item in items for line in item.splitlines() if line.strip()]


def jobs(system: str) -> list:
    """[{name, stage, env, commands}] in the order the pipeline runs them, matrix values expanded."""
    document = load(system)
    found = []
    if system == "github":
        for name, job in document["jobs"].items():
            entries = job.get("strategy", {}).get("matrix", {}).get("include") or [{}]
            for entry in entries:
                commands = []
                for step in job["steps"]:
                    run = step.get("run", "")
                    for key, value in entry.items():
                        run = run.replace("${{ matrix.%s }}" % key, value)
                    commands += lines(run)
                found.append({"name": "%s %s" % (name, entry.get("platform", "")), "stage": name,
                              "env": {}, "commands": commands, "workspace": "GITHUB_WORKSPACE"})
    elif system == "gitlab":
        before = document["default"]["before_script"]
        for name in ("build", "publish"):
            job = document[name]
            for entry in job.get("parallel", {}).get("matrix") or [{}]:
                found.append({"name": "%s %s" % (name, entry.get("PLATFORM", "")), "stage": job["stage"],
                              "env": dict(entry), "commands": lines(before) + lines(job["script"]),
                              "workspace": "CI_PROJECT_DIR"})
    else:
        for entry in document["jobs"]["include"]:
            env = dict(item.split("=", 1) for item in [entry["env"]]) if "env" in entry else {}
            script = entry.get("script", document["script"])
            found.append({"name": "%s %s" % (entry["stage"], env.get("PLATFORM", "")), "stage": entry["stage"],
                          "env": env, "commands": lines(document["install"]) + lines(script),
                          "workspace": "TRAVIS_BUILD_DIR"})
    return found


def known_variables(playbook: str) -> set:
    """Variables the playbook's plays and roles take: its own (*_hosts, publish_*) and its roles' options."""
    text = (COLLECTION_ROOT / "playbooks" / (playbook + ".yml")).read_text()
    names = set(re.findall(r"\b(provision_hosts|build_and_publish_hosts|publish_[a-z_]+)\b", text))
    for role in re.findall(r"role: archfleet\.multiarch\.([a-z_]+)", text):
        spec = yaml.safe_load((COLLECTION_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        names |= set(spec["argument_specs"]["main"]["options"])
    return names


def ansible_call(command: str, env: dict) -> tuple:
    """(playbook name, {variable: value}) of an ansible-playbook command, its $VARIABLES expanded from ``env``."""
    words = shlex.split(command)
    assert words[0] == "ansible-playbook", command
    assert words[1:5] == ["-i", "localhost,", "-c", "local"], command
    playbooks = [w for w in words if w.startswith("archfleet.multiarch.")]
    assert len(playbooks) == 1, command
    variables = {}
    for flag, value in zip(words, words[1:]):
        if flag != "-e":
            continue
        value = re.sub(r"\$([A-Z_]+)", lambda m: env.get(m.group(1), "<%s>" % m.group(1)), value)
        if value.startswith("{"):
            variables.update(json.loads(value))
        else:
            key, text = value.split("=", 1)
            variables[key] = text
    return playbooks[0][len("archfleet.multiarch."):], variables


@pytest.mark.parametrize("system", sorted(FILES))
def test_every_command_is_set_up_or_a_collection_playbook(system):
    pipeline = jobs(system)
    assert [j["stage"] for j in pipeline] == ["build"] * 3 + ["publish"], pipeline
    built = []
    for job in pipeline:
        env = dict(job["env"], IMAGE="registry.example/app", TAG="1.0")
        calls = []
        for command in job["commands"]:
            assert "qemu-user-static --reset" not in command and "docker manifest" not in command, command
            assert not re.match(r"docker (build|push|buildx)", command), command
            if command.startswith("ansible-playbook"):
                playbook, variables = ansible_call(command, env)
                assert (COLLECTION_ROOT / "playbooks" / (playbook + ".yml")).exists(), playbook
                unknown = set(variables) - known_variables(playbook)
                assert not unknown, (command, unknown)
                calls.append((playbook, variables))
            else:
                assert command in SETUP or " docker login " in command, command
        if job["stage"] == "build":
            assert [c[0] for c in calls] == ["provision", "build"], job
            (platform,) = calls[0][1]["build_host_platforms"]
            assert calls[1][1]["build_images_platforms"] == [platform]
            assert calls[1][1]["build_images_image"] == "registry.example/app" and calls[1][1]["build_images_tag"] == "1.0"
            built.append(platform)
        else:
            assert [c[0] for c in calls] == ["publish"], job
            assert calls[0][1]["publish_platforms"] == built == PLATFORMS
            assert (calls[0][1]["publish_image"], calls[0][1]["publish_tag"]) == ("registry.example/app", "1.0")


@pytest.mark.parametrize("system", sorted(FILES))
def test_docs_ci_md_shows_each_file_as_it_is(system):
    text = CI_DOC.read_text()
    block = "```yaml\n# docs/ci/%s\n%s```\n" % (FILES[system], (CI_DIR / FILES[system]).read_text())
    assert block in text, "docs/ci.md must show docs/ci/%s verbatim, after a first line '# docs/ci/%s'" % (
        FILES[system], FILES[system])


# --- running the pipelines -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A registry, a private dockerd and a build context with busybox for every platform (the project's sources)."""
    tmp = tmp_path_factory.mktemp("ci")
    binaries = {"linux/amd64": Path("/bin/busybox"), "linux/arm64": fb.busybox("aarch64"),
                "linux/arm/v7": fb.busybox("arm")}
    context = fb.write_busybox_context(tmp / "project", binaries)
    with Registry() as registry, Dockerd() as daemon:
        yield {"tmp": tmp, "registry": registry, "daemon": daemon, "context": context}


def overrides(parts) -> dict:
    """What points the playbooks at the test's parts; the only addition to the CI files' commands."""
    return {
        "build_host_install_packages": False,          # installed here already: no apt on a shared machine
        "build_host_docker_host": parts["daemon"].host,
        "build_host_docker_service": "unmanaged",
        "build_host_buildx_builder": "",
        "build_images_docker_host": parts["daemon"].host,
        "build_images_docker_cli": "/usr/bin/docker",
        "build_images_network": "none",               # the test's dockerd has no bridge
        "build_images_insecure_registries": [parts["registry"].host],
        "publish_insecure_registries": [parts["registry"].host],
    }


def run_job(job: dict, parts, tag: str) -> list:
    """Run the job's ansible-playbook commands as its CI system would (bash, with its variables); the set-up
    commands (installing Ansible and the collection, docker login) are what this checkout already is."""
    extra = parts["tmp"] / "overrides.json"
    extra.write_text(json.dumps(overrides(parts)))
    env = dict(os.environ, **job["env"])
    env.update({"IMAGE": "%s/ci/app" % parts["registry"].host, "TAG": tag, job["workspace"]: str(parts["context"]),
                "PATH": "%s:%s" % (Path(sys.executable).parent, os.environ["PATH"]),
                "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
                "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_LOCALHOST_WARNING": "false"})
    runs = []
    for command in job["commands"]:
        if not command.startswith("ansible-playbook"):
            continue
        proc = subprocess.run(["bash", "-c", command + " -e @" + shlex.quote(str(extra))], env=env,
                              capture_output=True, text=True, timeout=1200, check=False)
        assert proc.returncode == 0, "%s: %s\n%s%s" % (job["name"], command, proc.stdout[-6000:], proc.stderr[-3000:])
        runs.append(proc.stdout)
    return runs


def platforms_of(parts, tag: str) -> list:
    answer = requests.get("%s/v2/ci/app/manifests/%s" % (parts["registry"].url, tag),
                          headers={"Accept": ALL_MANIFEST_TYPES}, timeout=10)
    assert answer.status_code == 200, answer.text
    return sorted("/".join(filter(None, [m["platform"]["os"], m["platform"]["architecture"],
                                         m["platform"].get("variant")])) for m in answer.json()["manifests"])


def check_publication(parts, pipeline, tag: str) -> None:
    assert platforms_of(parts, tag) == sorted(PLATFORMS)
    assert platforms_of(parts, "latest") == sorted(PLATFORMS)
    again = run_job(pipeline[-1], parts, tag)
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s", again[-1]), again[-1]


@pytest.mark.parametrize("system", sorted(FILES))
def test_the_native_build_job_and_the_publish_job_run(parts, system):
    """Without binfmt_misc: the linux/amd64 build job (native on this x86_64 machine: provision registers nothing and
    the build runs no foreign code) and the publish job, for real. The two emulated jobs' per-platform tags are pushed
    here as small images made in Python (harness.images.push_image), stand-ins for what those jobs push; they run for
    real in test_the_whole_pipeline_runs, which needs the binfmt_misc lock."""
    pipeline = jobs(system)
    tag = system + "-native"
    for job in pipeline[:-1]:
        platform = job["env"].get("PLATFORM") or job["name"].split()[-1]
        if platform == "linux/amd64":
            assert "failed=0" in run_job(job, parts, tag)[-1]
        else:
            push_image(parts["registry"].url, "ci/app", "%s-%s" % (tag, platform.replace("/", "-")), platform=platform)
    run_job(pipeline[-1], parts, tag)
    check_publication(parts, pipeline, tag)


@pytest.mark.parametrize("system", sorted(FILES))
def test_the_whole_pipeline_runs(parts, binfmt_state, system):
    """Every job for real, the emulated build jobs included (the binfmt_misc lock held, the table restored)."""
    started = time.monotonic()
    pipeline = jobs(system)
    for job in pipeline:
        runs = run_job(job, parts, system)
        if job["stage"] == "build":
            assert "failed=0" in runs[-1], runs[-1]
    check_publication(parts, pipeline, system)
    print("%s pipeline: %.0f s" % (system, time.monotonic() - started))

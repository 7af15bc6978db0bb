"""The collection as users get it: `ansible-galaxy collection build` from the git-tracked files,
installed into a fresh virtualenv that has only the runtime requirements, then a playbook run with
nothing but that installed collection: both registry modules against a test registry, and the filters.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from harness.ansible_run import COLLECTION_ROOT, HARNESS
from harness.images import push_image, push_index

# What must never be in the tarball: build output, virtualenvs, test output, caches, benchmarks.
FORBIDDEN_PREFIXES = (".venv/", "build/", "bench/", "tests/output/", ".pytest_cache/", ".ci/", "tools/", ".git/",
                      "changelogs/.plugin-cache.yaml", ".hypothesis/", ".mypy_cache/", ".ruff_cache/", ".tox/",
                      "requirements-test.txt", "Makefile")
FORBIDDEN_PARTS = ("__pycache__", ".pyc", ".tar.gz")
REQUIRED = ("MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml",
            "plugins/modules/docker_manifest_info.py", "plugins/modules/docker_manifest_create.py",
            "plugins/modules/qemu_binfmt.py", "plugins/filter/image_ref.py", "plugins/filter/platform.py",
            "roles/build_host/meta/argument_specs.yml", "requirements.txt", "meta/execution-environment.yml",
            "COPYING", "CHANGELOG.rst", "changelogs/changelog.yaml", "playbooks/audit.yml")
RUNTIME_PACKAGES = ("ansible-core", "requests", "jmespath")


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(part) for part in cmd], capture_output=True, text=True, check=False,
                          timeout=600, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def requirement_lines(name: str) -> list:
    return [line.strip() for line in (COLLECTION_ROOT / name).read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-r "))]


def pinned_runtime_requirements() -> list:
    """The test venv's pins of the runtime packages (requirements-test.txt), e.g. ansible-core==2.19.14."""
    chosen = [pin for pin in requirement_lines("requirements-test.txt")
              if pin.split("==")[0].lower() in RUNTIME_PACKAGES]
    assert len(chosen) == len(RUNTIME_PACKAGES), chosen
    return chosen


def test_runtime_requirements_are_ranges_that_ansible_builder_can_merge():
    """requirements.txt ships in the collection: exact pins there would be forced on every execution environment."""
    ranges = requirement_lines("requirements.txt")
    assert sorted(line.split(">=")[0].lower() for line in ranges) == sorted(RUNTIME_PACKAGES)
    assert not [line for line in ranges if "==" in line], ranges


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    """The collection built from a copy of the files git knows (tracked, or new and not ignored)."""
    work = tmp_path_factory.mktemp("galaxy-build")
    source, dist = work / "source", work / "dist"
    files = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=COLLECTION_ROOT).stdout.split("\0")
    for relative in filter(None, files):
        origin = COLLECTION_ROOT / relative
        if origin.is_file():  # tracked files deleted in the work tree are not copied
            target = source / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(origin.read_bytes())
    run([Path(sys.executable).parent / "ansible-galaxy", "collection", "build", "--output-path", dist], cwd=source)
    (built,) = dist.glob("archfleet-multiarch-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def clean_install(tarball, tmp_path_factory) -> dict:
    """A new virtualenv with only the pinned runtime requirements, and the tarball installed."""
    work = tmp_path_factory.mktemp("galaxy-venv")
    venv, collections = work / "venv", work / "collections"
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", *pinned_runtime_requirements()])
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
           "ANSIBLE_NOCOLOR": "1", "PATH": f"{venv / 'bin'}:/usr/bin:/bin:/usr/sbin:/sbin"}
    run([venv / "bin" / "ansible-galaxy", "collection", "install", tarball, "-p", collections], env=env, cwd=work)
    return {"venv": venv, "collections": collections, "env": env, "work": work}


def test_tarball_holds_the_collection_and_no_build_output(tarball):
    with tarfile.open(tarball) as archive:
        names = [member.name for member in archive.getmembers()]
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["namespace"] == "archfleet"
    assert manifest["collection_info"]["name"] == "multiarch"
    for name in REQUIRED:
        assert name in names, name
    unwanted = [name for name in names
                if name.startswith(FORBIDDEN_PREFIXES) or any(part in name for part in FORBIDDEN_PARTS)]
    assert unwanted == []


def test_installed_collection_runs_from_a_clean_virtualenv(clean_install, open_registry):
    venv, env, work = clean_install["venv"], clean_install["env"], clean_install["work"]
    listed = json.loads(run([venv / "bin" / "ansible-galaxy", "collection", "list", "--format", "json"],
                            env=env, cwd=work).stdout)
    # The only archfleet.multiarch ansible sees is the installed one (not the checkout's build/collections).
    assert [path for path, found in listed.items() if "archfleet.multiarch" in found] == [
        str(clean_install["collections"] / "ansible_collections")]

    host = open_registry.host
    target = f"{host}/galaxy/app:1"
    playbook = work / "play.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "inspect", "archfleet.multiarch.docker_manifest_info": {"images": [f"{host}/fixtures/multi:latest"]}},
        {"name": "publish", "archfleet.multiarch.docker_manifest_create": {
            "name": target, "sources": [f"{host}/fixtures/single:amd64", f"{host}/fixtures/single:arm64"]}},
        {"name": "read back", "archfleet.multiarch.docker_manifest_info": {"images": [target]}},
        {"name": "filters", "ansible.builtin.set_fact": {
            "parsed": "{{ 'busybox:1.36' | archfleet.multiarch.image_ref }}",
            "normalised": "{{ 'aarch64' | archfleet.multiarch.platform }}"}},
    ]}]))
    record = work / "results.json"
    run_env = {**env, "ANSIBLE_CALLBACK_PLUGINS": str(HARNESS / "callback_plugins"),
               "ANSIBLE_CALLBACKS_ENABLED": "record_results", "RECORD_RESULTS_FILE": str(record)}
    run([venv / "bin" / "ansible-playbook", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={venv / 'bin' / 'python'}", playbook], env=run_env, cwd=work)
    results = {entry["task"]: entry["result"] for entry in json.loads(record.read_text())["tasks"]}

    assert results["inspect"]["images"][0]["exists"] is True
    assert results["inspect"]["images"][0]["kind"] == "index"
    published = results["publish"]
    assert published["changed"] is True and published["platforms"] == ["linux/amd64", "linux/arm64"]
    assert results["read back"]["images"][0]["digest"] == published["digest"]
    facts = results["filters"]["ansible_facts"]
    assert facts["parsed"]["canonical"] == "docker.io/library/busybox:1.36"
    assert facts["normalised"]["architecture"] == "arm64" and facts["normalised"]["os"] == "linux"


def documented_audit_vars() -> str:
    """The audit-vars.yml of docs/audit.md, as written there."""
    text = (COLLECTION_ROOT / "docs" / "audit.md").read_text()
    block = text.split("`audit-vars.yml`:", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "audit_images:" in block
    return block


def test_the_documented_audit_example_runs_from_the_installed_collection(clean_install, open_registry):
    """docs/audit.md's example, run as it says for an installed collection (`ansible-playbook
    archfleet.multiarch.audit -e @audit-vars.yml`), against a registry holding the images it names."""
    venv, env, work = clean_install["venv"], clean_install["env"], clean_install["work"]
    url, host = open_registry.url, open_registry.host
    children = [push_image(url, "demo/hello", arch, platform=f"linux/{arch}", payload=b"hello " + arch.encode())
                for arch in ("amd64", "arm64")]
    push_index(url, "demo/hello", "latest", children)
    variables = work / "audit-vars.yml"
    variables.write_text(documented_audit_vars().replace("127.0.0.1:5000", host))
    report_dir = work / yaml.safe_load(variables.read_text())["audit_report_dir"]
    proc = subprocess.run([str(venv / "bin" / "ansible-playbook"), "archfleet.multiarch.audit", "-e", f"@{variables}"],
                          env=env, cwd=work, capture_output=True, text=True, timeout=600, check=False)
    # As documented: the two error failures, and the reports written.
    assert proc.returncode != 0, proc.stdout
    assert (f"2 error policy failures: {host}/demo/hello:amd64: required-platforms, "
            f"{host}/demo/nothing:latest: image-exists (report: {report_dir}/audit.md)") in " ".join(proc.stdout.split())
    assert sorted(path.name for path in report_dir.iterdir()) == [
        "audit.html", "audit.json", "audit.junit.xml", "audit.md"]

"""An execution environment that includes the collection: ansible-builder finds its Python requirements as
ranges, merges them with a user's own pins, writes the build context, and pip resolves the result.

ansible-builder runs from its own venv (build/ansible-builder, made by `make test-integration`);
`create` needs no container engine. Resolving with `pip install --dry-run` reads the package index
(as `make venv` does) and installs nothing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.ansible_run import COLLECTION_ROOT
# The module-scoped tarball fixture of the galaxy build test, used here by name.
from test_galaxy_build import run, tarball  # noqa: F401 pylint: disable=unused-import

BUILDER_VENV = COLLECTION_ROOT / "build" / "ansible-builder"
BUILDER = BUILDER_VENV / "bin" / "ansible-builder"
# A user's pin that an exact pin in the collection's requirements.txt would contradict.
USER_PINS = ["requests==2.31.0", "jmespath==1.0.1"]


@pytest.fixture(scope="module")
def builder():
    assert BUILDER.exists(), f"{BUILDER} is missing: `make test-integration` installs it"
    return BUILDER


@pytest.fixture(scope="module")
def installed(builder, tarball, tmp_path_factory):  # noqa: F811
    collections = tmp_path_factory.mktemp("ee-collections")
    # --force: with ANSIBLE_COLLECTIONS_PATH pointing at the checkout (make exports it), galaxy would
    # otherwise find the collection "already installed" there and install nothing here.
    run([Path(sys.executable).parent / "ansible-galaxy", "collection", "install", "--force", tarball, "-p", collections])
    return collections


def test_introspection_finds_ranges_and_merges_a_users_pins(installed, tmp_path):
    user = tmp_path / "user-requirements.txt"
    user.write_text("\n".join(USER_PINS) + "\n")
    merged = tmp_path / "merged.txt"
    run([BUILDER, "introspect", "--user-pip", user, "--write-pip", merged, installed])
    ours = yaml.safe_load(run([BUILDER, "introspect", installed]).stdout)
    assert ours["python"] == ["requests>=2.28.1  # from collection archfleet.multiarch",
                              "jmespath>=1.0.1  # from collection archfleet.multiarch"]
    assert ours["system"] == []
    # The merged requirements resolve together: the collection's ranges admit the user's pins.
    report = tmp_path / "report.json"
    run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--disable-pip-version-check", "--report", report, "-r", merged])
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert (resolved["requests"], resolved["jmespath"]) == ("2.31.0", "1.0.1")


def test_create_writes_a_build_context_for_an_ee_with_the_collection(builder, tarball, tmp_path):  # noqa: F811
    definition = tmp_path / "execution-environment.yml"
    definition.write_text(yaml.safe_dump({
        "version": 3,
        "images": {"base_image": {"name": "registry.example.invalid/ee-base:latest"}},
        "dependencies": {
            "ansible_core": {"package_pip": "ansible-core>=2.17"},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "galaxy": {"collections": [{"name": str(tarball), "type": "file"}]},
            "python": USER_PINS,
        },
    }))
    context = tmp_path / "context"
    proc = subprocess.run([str(builder), "create", "-f", str(definition), "-c", str(context),
                           "--output-filename", "Containerfile"],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy["collections"] == [{"name": str(tarball), "type": "file"}]

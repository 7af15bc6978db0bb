"""The EXAMPLES of the filters the build roles use run in real ansible-playbook, each giving what its comment says.

Each example is a debug task followed by a comment with the expected value as a Python literal; the test runs all
of them on localhost (no root, no network) and compares.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / "build" / "collections"
FILTERS = ["platform_builds", "platform_conflicts", "build_results", "index_platforms", "release_plan", "audit_since"]


def examples(name):
    """(task, expected value) of each example of plugins/filter/<name>.py."""
    tree = ast.parse((ROOT / "plugins" / "filter" / (name + ".py")).read_text())
    text = next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "EXAMPLES")
    tasks = yaml.safe_load(text)
    expected = [ast.literal_eval(line.strip()[2:]) for line in text.splitlines() if re.match(r"^\s+# [\[{]", line)]
    assert len(tasks) == len(expected), name
    return list(zip(tasks, expected))


@pytest.mark.parametrize("name", FILTERS)
def test_every_example_gives_what_its_comment_says(name, tmp_path):
    cases = examples(name)
    playbook = tmp_path / "examples.yml"
    out = tmp_path / "results.json"
    tasks = [dict(task, register=f"example_{n}") for n, (task, _expected) in enumerate(cases)]
    tasks.append({"name": "Write what each example gave", "ansible.builtin.copy": {
        "dest": str(out), "content": "{{ [%s] | to_json }}" % ", ".join(f"example_{n}.msg" for n in range(len(cases)))}})
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
           "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "PATH": f"{venv_bin}:{os.environ['PATH']}",
           # The user's passwd home may not exist (nobody's is /nonexistent): ansible's temporary files go here.
           "ANSIBLE_REMOTE_TMP": str(tmp_path / "remote-tmp"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local-tmp")}
    proc = subprocess.run([str(venv_bin / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for (task, expected), gave in zip(cases, json.loads(out.read_text())):
        assert gave == expected, task["name"]

"""Every row of the bad input table (error_cases.yml, rendered as docs/errors.md) through real
ansible-playbook: the task fails with the row's message, and nothing is written.

All rows run in one ansible-playbook run (one task per row, ignore_errors) to stay fast; each
row is then its own test. Registry rows talk to a seeded open registry through a counting proxy,
qemu_binfmt rows to the real kernel, role rows include the role for real (in a play that gathers
facts, as provisioning plays do).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from harness.ansible_run import PlaybookRun, run_playbook
from harness.proxy import Proxy

CASES_FILE = Path(__file__).with_name("error_cases.yml")
TABLE = yaml.safe_load(CASES_FILE.read_text())
INPUT_VAR = "errors_table_input"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
CAN_TOUCH_BINFMT = os.geteuid() == 0 and Path("/usr/bin/qemu-aarch64-static").exists()


def fill(value, values: dict):
    """``value`` with every ``{placeholder}`` in its strings replaced."""
    if isinstance(value, str):
        for name, text in values.items():
            value = value.replace("{%s}" % name, text)
        return value
    if isinstance(value, list):
        return [fill(item, values) for item in value]
    if isinstance(value, dict):
        return {fill(key, values): fill(item, values) for key, item in value.items()}
    return value


def row_values(base: dict, case: dict) -> dict:
    values = dict(base)
    values["target"] = f"{values['registry']}/errors/{case['id']}:1"
    return values


def row_args(content: dict, case: dict, values: dict) -> dict:
    args = dict(content.get("defaults") or {})
    for name in case.get("omit", []):
        args.pop(name)
    args.update(case.get("args") or {})
    return fill(args, values)


def row_task(content: dict, case: dict, values: dict) -> dict:
    """The playbook task of one row, named by the row's id."""
    name, kind = content["name"], content["kind"]
    if kind == "module":
        return {"name": case["id"], name: row_args(content, case, values), "ignore_errors": True}
    if kind == "filter":
        # A row's args are the filter's keyword arguments.
        call = "(**%s_args)" % INPUT_VAR if case.get("args") else ""
        return {"name": case["id"], "ignore_errors": True,
                "vars": {INPUT_VAR: fill(case["input"], values), INPUT_VAR + "_args": case.get("args") or {}},
                "ansible.builtin.debug": {"msg": "{{ %s | %s%s }}" % (INPUT_VAR, name, call)}}
    if kind == "lookup":
        # Terms and keywords reach the lookup through variables, as a vaulted password would.
        args = row_args(content, case, values)
        terms = args.pop("_terms", [])
        return {"name": case["id"], "ignore_errors": True,
                "vars": {INPUT_VAR + "_terms": terms, INPUT_VAR + "_args": args},
                "ansible.builtin.debug": {"msg": "{{ lookup(%r, *%s_terms, **%s_args) }}" % (name, INPUT_VAR, INPUT_VAR)}}
    if kind == "role":
        # The refusal is the role's argument check; rescue records its message under the row's id.
        return {"name": case["id"] + " (role)",
                "block": [{"name": "include " + name, "ansible.builtin.include_role": {"name": name},
                           "vars": row_args(content, case, values)}],
                "rescue": [{"name": case["id"], "ansible.builtin.debug": {"msg": "{{ ansible_failed_result.msg }}"}}]}
    raise ValueError(f"unknown kind {kind!r} in {CASES_FILE.name}")


def runnable(content: dict) -> bool:
    return content["checks"] != "binfmt" or CAN_TOUCH_BINFMT


def params() -> list:
    rows = []
    for content in TABLE["contents"]:
        for case in content["cases"]:
            marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if case.get("xfail") else []
            if not runnable(content):
                marks.append(pytest.mark.skip(reason="qemu_binfmt rows need root and qemu-user-static"))
            rows.append(pytest.param(content, case, id=case["id"], marks=marks))
    return rows


def binfmt_entries() -> dict:
    if not BINFMT.is_dir():
        return {}
    return {path.name: path.read_text() for path in BINFMT.iterdir() if path.name != "register"}


def write_files(directory: Path) -> None:
    for relative, text in TABLE["files"].items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if relative.startswith("bin/"):
            path.chmod(0o755)


def table_playbook(base_values: dict) -> str:
    """Two plays: module and filter rows, then role rows (roles validate after fact gathering)."""
    tasks = {"role": [], "other": []}
    for content in TABLE["contents"]:
        if runnable(content):
            group = "role" if content["kind"] == "role" else "other"
            tasks[group] += [row_task(content, case, row_values(base_values, case)) for case in content["cases"]]
    plays = [{"name": "modules and filters", "hosts": "localhost", "gather_facts": False, "tasks": tasks["other"]},
             {"name": "roles", "hosts": "localhost", "gather_facts": True, "gather_subset": ["min"],
              "tasks": tasks["role"]}]
    return json.dumps(plays, indent=1)


@dataclass
class TableRun:
    run: PlaybookRun
    base_values: dict
    writes: list    # (method, path) of each write the registry saw
    requested_paths: list
    binfmt_before: dict
    binfmt_after: dict
    registry_url: str


@pytest.fixture(scope="module")
def table_run(open_registry, tmp_path_factory, binfmt_state):  # pylint: disable=unused-argument  # the table is compared before/after
    files = tmp_path_factory.mktemp("error-files")
    write_files(files)
    with Proxy(open_registry) as proxy:
        base = {"registry": proxy.host, "files": str(files)}
        before = binfmt_entries()
        run = run_playbook(table_playbook(base), env={"PATH": f"{files / 'bin'}:{os.environ['PATH']}"})
        after = binfmt_entries()
        paths = [entry.path for entry in proxy.log]
        writes = [(entry.method, entry.path) for entry in proxy.log
                  if entry.method in ("PUT", "POST", "PATCH", "DELETE")]
        yield TableRun(run, base, writes, paths, before, after, open_registry.url)


def repository_exists(registry_url: str, repository: str) -> bool:
    response = requests.get(f"{registry_url}/v2/{repository}/tags/list", timeout=30)
    return response.status_code == 200


@pytest.mark.parametrize("content, case", params())
def test_bad_input_row(table_run, content, case):
    run, values = table_run.run, row_values(table_run.base_values, case)
    result = run.result(case["id"])  # KeyError (the row was accepted) when a role row has no rescue
    assert content["kind"] == "role" or result.get("failed") is True, result
    assert not result.get("changed"), result
    message = result.get("msg", "")
    if "message_start" in case:
        assert message.startswith(fill(case["message_start"], values)), message
    else:
        assert fill(case["message"], values) in message, message

    if content["kind"] == "module" and content["checks"] == "registry":
        # Refused while checking options: no client, so no registry_stats; otherwise it talked to the registry.
        assert ("registry_stats" in result) == (case["stage"] == "registry"), result
    if content["checks"] == "registry":
        assert table_run.writes == [], "the registry saw writes"
        assert not repository_exists(table_run.registry_url, f"errors/{case['id']}")
    if content["checks"] == "binfmt":
        assert table_run.binfmt_after == table_run.binfmt_before
    if content["kind"] == "role":
        assert run.changed_total() == 0

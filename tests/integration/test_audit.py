"""playbooks/audit.yml and the manifest_query/manifest_audit filters, run by real ansible-playbook
against a real registry seeded with the standard fixtures."""
from __future__ import annotations

import json
import re

from harness.ansible_run import COLLECTION_ROOT, play, task

AUDIT_PLAYBOOK = COLLECTION_ROOT / "playbooks" / "audit.yml"
GATHER = "Gather manifest facts with creation dates for every image"
EVALUATE = "Evaluate the policies for every image"
NOW = "2024-03-01T00:00:00Z"          # the fixtures are created 2024-01-01: 60 days old


def audit_vars(registry, report_dir, *images, **extra):
    variables = {
        "audit_images": [f"{registry.host}/{image}" for image in images],
        "audit_require_platforms": ["linux/amd64", "linux/arm64", "linux/arm/v7"],
        "audit_report_dir": str(report_dir),
        "audit_now": NOW,
    }
    variables.update(extra)
    return variables


def test_reports_and_failing_error_policies(playbook, open_registry, tmp_path):
    registry, fx = open_registry, open_registry.fixtures
    report_dir = tmp_path / "report"
    run = playbook(AUDIT_PLAYBOOK, extra_vars=audit_vars(
        registry, report_dir, "fixtures/multi:latest", "fixtures/dockerlist:latest", "fixtures/single:amd64",
        "fixtures/no-such-repo:latest"))
    h = registry.host

    # Exit status: error policies failed; the message lists each failing image/policy pair.
    assert run.rc != 0, run.output
    message = run.result("Fail when a policy of severity error failed")["msg"]
    assert message == (f"3 error policy failures: {h}/fixtures/dockerlist:latest: required-platforms, "
                       f"{h}/fixtures/single:amd64: required-platforms, "
                       f"{h}/fixtures/no-such-repo:latest: image-exists (report: {report_dir}/audit.md)")
    # One docker_manifest_info task gathered everything.
    assert [t["task"] for t in run.tasks].count(GATHER) == 1

    report = json.loads((report_dir / "audit.json").read_text())
    multi, dockerlist, single, missing = report["images"]
    assert multi["digest"] == fx["multi"]["digest"]
    assert {m["platform_string"]: m["digest"] for m in multi["manifests"]} == fx["multi"]["platforms"]
    assert all(m["config"]["created"] == "2024-01-01T00:00:00Z" and m["age_days"] == 60 for m in multi["manifests"])
    assert multi["age_days"] == 60 and multi["status"] == "warning"
    assert [r["policy"] for r in multi["results"] if not r["passed"]] == ["source-annotation"]
    assert dockerlist["missing_platforms"] == ["linux/arm/v7"] and dockerlist["status"] == "error"
    assert single["kind"] == "image" and single["status"] == "error"
    # A missing image is a fact in the report, failing image-exists only.
    assert missing["exists"] is False and missing["digest"] is None
    assert [r["policy"] for r in missing["results"] if not r["passed"]] == ["image-exists"]
    assert report["now"] == "2024-03-01T00:00:00+00:00"
    assert report["platform_columns"] == ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x"]
    assert report["summary"]["failed"] == {"error": 3, "warning": 3, "info": 1}
    assert report["summary"]["status"] == "error"
    assert {p["name"] for p in report["policies"]} >= {"image-exists", "required-platforms", "platforms-fresh",
                                                       "source-annotation", "not-attestation-only"}

    markdown = (report_dir / "audit.md").read_text()
    assert "- Status: **ERROR**: 3 error, 3 warning, 1 info failures (4 images x 6 policies)" in markdown
    assert f"| {h}/fixtures/dockerlist:latest | required-platforms | error |" in markdown
    assert f"| {h}/fixtures/no-such-repo:latest | does not exist |" in markdown
    assert re.search(rf"\| {re.escape(h)}/fixtures/dockerlist:latest \| `` [0-9a-f]{{12}} `` .*\| \*\*missing\*\* \|",
                     markdown)
    assert "`` !exists \\|\\| length(missing_platforms \\|\\| `[]`) == `0` ``" in markdown

    html = (report_dir / "audit.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert not re.search(r"<(link|script|img)\b|\bsrc=|@import|url\(", html), "the page must be self-contained"
    matrix = html[html.index('<table id="matrix">'):html.index("</table>")]
    assert "<th>linux/arm/v7</th>" in matrix
    assert fx["multi"]["platforms"]["linux/ppc64le"].split(":")[1][:12] in matrix
    assert "60 days" in matrix
    dockerlist_row = matrix[matrix.index(f"{h}/fixtures/dockerlist:latest"):]
    dockerlist_row = dockerlist_row[:dockerlist_row.index("</tr>")]
    assert '<td class="error"><span class="badge">error</span><br><small>required-platforms</small>' in dockerlist_row
    assert '<td class="cell-missing">missing</td>' in dockerlist_row
    assert '<div class="banner error" id="status">' in html


def test_warnings_only_exit_zero_and_rerun_changes_nothing(playbook, open_registry, tmp_path):
    report_dir = tmp_path / "report"
    # A relative report directory is relative to where ansible-playbook runs.
    variables = audit_vars(open_registry, "report", "fixtures/multi:latest", audit_max_age_days=30,
                           audit_require_platforms=["linux/amd64", "linux/arm64"])
    run = playbook(AUDIT_PLAYBOOK, extra_vars=variables, cwd=tmp_path)
    assert run.rc == 0, run.output
    summary = json.loads((report_dir / "audit.json").read_text())["summary"]
    assert summary["failed"] == {"error": 0, "warning": 2, "info": 0}
    failed = {(f["policy"], f["severity"]) for f in summary["failures"]}
    assert failed == {("platforms-fresh", "warning"), ("source-annotation", "warning")}
    assert run.task("Fail when a policy of severity error failed")["status"] == "skipped"
    assert '<td class="cell warning">' in (report_dir / "audit.html").read_text()

    again = playbook(AUDIT_PLAYBOOK, extra_vars=variables, cwd=tmp_path)
    assert again.rc == 0 and again.changed_total() == 0, again.output


def test_custom_policies_and_registry_options(playbook, open_registry, tmp_path):
    report_dir = tmp_path / "report"
    policies = [
        {"name": "five-platforms", "expression": "length(platforms) == `5`", "severity": "error"},
        {"name": "has-attestation", "expression": "length(attestations) > `0`", "severity": "info",
         "description": "buildx provenance attached"},
    ]
    run = playbook(AUDIT_PLAYBOOK, extra_vars=audit_vars(
        open_registry, report_dir, "fixtures/multi:latest", "fixtures/single:arm64", audit_policies=policies,
        audit_require_platforms=[], audit_registry_options={"retries": 1, "timeout": 10, "concurrency": 2}))
    assert run.rc != 0
    assert run.result("Fail when a policy of severity error failed")["msg"].startswith(
        f"1 error policy failures: {open_registry.host}/fixtures/single:arm64: five-platforms")
    report = json.loads((report_dir / "audit.json").read_text())
    assert [p["name"] for p in report["policies"]] == ["five-platforms", "has-attestation"]
    assert report["summary"]["failed"] == {"error": 1, "warning": 0, "info": 1}
    assert "missing_platforms" not in report["images"][0]


def test_malformed_policy_fails_before_any_report(playbook, open_registry, tmp_path):
    report_dir = tmp_path / "report"
    policies = [{"name": "exists", "expression": "exists", "severity": "error"},
                {"name": "broken", "expression": "length(platforms", "severity": "warning"}]
    run = playbook(AUDIT_PLAYBOOK, extra_vars=audit_vars(open_registry, report_dir, "fixtures/multi:latest",
                                                         audit_policies=policies))
    assert run.rc != 0
    assert run.result(EVALUATE)["msg"].endswith(
        "manifest_audit: policy 'broken' (policies[1]): invalid JMESPath expression 'length(platforms': "
        "the expression is incomplete at position 16 (its end)")
    assert not report_dir.exists()


def test_invalid_variables_are_reported_before_any_request(playbook, tmp_path):
    run = playbook(AUDIT_PLAYBOOK, extra_vars={"audit_images": {"app": "1.0"}, "audit_report_dir": str(tmp_path),
                                               "audit_registry_options": {"user": "ci"}})
    assert run.rc != 0
    errors = run.result("Check the audit variables")["argument_errors"]
    # ansible-core < 2.19 names the type as <class 'dict'>.
    assert re.match(r"argument 'audit_images' is of type (dict|<class 'dict'>) and we were unable to convert to list",
                    errors[0]), errors[0]
    assert errors[1].startswith("audit_registry_options.user. Supported parameters include: ca_path, concurrency")
    assert GATHER not in [t["task"] for t in run.tasks]


def test_manifest_query_filter(playbook, open_registry):
    h = open_registry.host
    run = playbook(play(
        dict(task("inspect", "docker_manifest_info", images=[f"{h}/fixtures/multi:latest", f"{h}/fixtures/single:amd64"],
                  require_platforms=["linux/arm64"]), register="inspected"),
        {"name": "lacking", "ansible.builtin.set_fact": {
            "lacking": "{{ inspected | archfleet.multiarch.manifest_query("
                       "'images[?length(missing_platforms) > `0`].canonical') }}",
            "arm64": "{{ inspected.images[0] | archfleet.multiarch.manifest_query("
                     "'manifests[?platform.architecture==`\"arm64\"`].digest | [0]') }}",
            "count": "{{ inspected | archfleet.multiarch.manifest_query('length(images[0].platforms)') }}"}},
        {"name": "bad", "ansible.builtin.debug": {"msg": "{{ [] | archfleet.multiarch.manifest_query('a[?b=]') }}"},
         "ignore_errors": True},
        {"name": "unknown function", "ansible.builtin.debug": {
            "msg": "{{ {} | archfleet.multiarch.manifest_query('nosuch(a)') }}"}, "ignore_errors": True},
    ))
    assert run.rc == 0, run.output
    facts = run.result("lacking")["ansible_facts"]
    assert facts["lacking"] == [f"{h}/fixtures/single:amd64"]
    assert facts["arm64"] == open_registry.fixtures["multi"]["platforms"]["linux/arm64/v8"]
    assert int(facts["count"]) == 5  # ansible-core < 2.19 renders a template that is one number as a string
    assert "manifest_query: invalid JMESPath expression 'a[?b=]': Unknown token '=' at position 4" in \
        run.result("bad")["msg"]
    assert "manifest_query: JMESPath expression 'nosuch(a)' failed: Unknown function: nosuch()" in \
        run.result("unknown function")["msg"]

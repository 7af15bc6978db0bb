"""The audit role (through its wrapper playbooks/audit.yml) and the manifest_query/manifest_audit filters,
run by real ansible-playbook against a real registry seeded with the standard fixtures: the JSON, Markdown,
HTML and JUnit reports, broken and unreachable images, and the role's variables."""
from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest
import requests

from harness.ansible_run import COLLECTION_ROOT, play, task
from harness.images import push_image, push_index
from harness.registry import Registry, free_port

AUDIT_PLAYBOOK = COLLECTION_ROOT / "playbooks" / "audit.yml"
ROLE = "archfleet.multiarch.audit : "
GATHER = ROLE + "Gather manifest facts with creation dates for every image"
EVALUATE = ROLE + "Evaluate the policies for every image"
FAIL = ROLE + "Fail when a policy of severity error failed"
VALIDATE = (ROLE + "Validating arguments against arg spec 'main' - "
            "Audit multi-arch images against JMESPath policies and write reports")
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
    message = run.result(FAIL)["msg"]
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
    assert "- Status: **ERROR**: 3 error, 3 warning, 1 info failures (4 images x 7 policies)" in markdown
    assert f"| {h}/fixtures/dockerlist:latest | required-platforms | error |" in markdown
    assert f"| {h}/fixtures/no-such-repo:latest | does not exist |" in markdown
    # Full digests, human-readable sizes; failing images first.
    assert f"| {h}/fixtures/multi:latest | warning | index | `` {fx['multi']['digest']} `` |" in markdown
    assert re.search(rf"\| {re.escape(h)}/fixtures/dockerlist:latest \| `` sha256:[0-9a-f]{{64}} `` 138 B 60d .*"
                     rf"\| \*\*missing\*\* \|", markdown)
    images_table = markdown[markdown.index("## Images"):markdown.index("## Platform matrix")]
    order = [line.split(" | ")[0][2:] for line in images_table.splitlines() if line.startswith(f"| {h}/")]
    assert order == [f"{h}/fixtures/dockerlist:latest", f"{h}/fixtures/single:amd64",
                     f"{h}/fixtures/no-such-repo:latest", f"{h}/fixtures/multi:latest"]
    # A policy that does not apply to a missing image says n/a, not pass.
    assert f"| {h}/fixtures/no-such-repo:latest | **FAIL** (error) | n/a | n/a | n/a | n/a | n/a | n/a |" in markdown
    assert "`` !exists \\|\\| length(missing_platforms \\|\\| `[]`) == `0` ``" in markdown

    html = (report_dir / "audit.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    # Self-contained: one inline script, nothing loaded from anywhere.
    assert html.count("<script") == 1 and "<script>" in html
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(|https?://|fetch\(|XMLHttpRequest", html), \
        "the page must be self-contained"
    matrix = html[html.index('<table id="matrix"'):html.index("</table>", html.index('<table id="matrix"'))]
    assert "<th>linux/arm/v7</th>" in matrix
    ppc64le = fx["multi"]["platforms"]["linux/ppc64le"]
    assert f'<code class="digest" title="{ppc64le}">{ppc64le}</code>' in matrix
    assert "139 B, 60 days" in matrix
    assert matrix.index("fixtures/dockerlist:latest") < matrix.index("fixtures/multi:latest")
    dockerlist_row = matrix[matrix.index(f"{h}/fixtures/dockerlist:latest"):]
    dockerlist_row = dockerlist_row[:dockerlist_row.index("</tr>")]
    # Each failed policy with its own severity, so an error is told from a warning.
    assert ('<span class="badge">error</span><small class="failure error" data-severity="error">'
            '<span class="badge">error</span>required-platforms</small>') in dockerlist_row
    assert '<td class="cell-missing" data-sort="">missing</td>' in dockerlist_row
    assert '<div class="banner error" id="status">' in html
    results = html[html.index('<table id="results"'):]
    missing_row = results[results.index(f"{h}/fixtures/no-such-repo:latest"):]
    missing_row = missing_row[:missing_row.index("</tr>")]
    assert missing_row.count(">n/a</td>") == 6 and missing_row.count(">FAIL</td>") == 1

    junit = ElementTree.parse(report_dir / "audit.junit.xml").getroot()
    assert junit.tag == "testsuites"
    assert (junit.get("tests"), junit.get("failures"), junit.get("skipped")) == ("28", "3", "6")
    suites = {suite.get("name"): suite for suite in junit}
    assert list(suites) == [f"{h}/fixtures/multi:latest", f"{h}/fixtures/dockerlist:latest",
                            f"{h}/fixtures/single:amd64", f"{h}/fixtures/no-such-repo:latest"]
    failed = [(case.get("classname"), case.get("name")) for suite in junit for case in suite
              if case.find("failure") is not None]
    assert failed == [(f"{h}/fixtures/dockerlist:latest", "required-platforms"),
                      (f"{h}/fixtures/single:amd64", "required-platforms"),
                      (f"{h}/fixtures/no-such-repo:latest", "image-exists")]
    missing_suite = suites[f"{h}/fixtures/no-such-repo:latest"]
    assert [case.get("name") for case in missing_suite.iter("testcase") if case.find("skipped") is not None] == \
        ["readable", "required-platforms", "not-attestation-only", "platforms-fresh", "source-annotation",
         "multi-platform"]
    # A warning is in the report but does not fail the test case (nor the run).
    warning = [case for case in suites[f"{h}/fixtures/multi:latest"] if case.get("name") == "source-annotation"][0]
    assert warning.find("failure") is None and warning.find("system-out").text.startswith("WARNING: source-annotation")


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
    assert run.task(FAIL)["status"] == "skipped"
    assert '<td class="cell warning" data-sort="60">' in (report_dir / "audit.html").read_text()

    again = playbook(AUDIT_PLAYBOOK, extra_vars=variables, cwd=tmp_path)
    assert again.rc == 0 and again.changed_total() == 0, again.output


SUMMARY = ROLE + "Summarise the audit"


def test_check_mode_says_no_report_was_written(playbook, open_registry, tmp_path):
    report_dir = tmp_path / "report"
    variables = audit_vars(open_registry, report_dir, "fixtures/multi:latest", "fixtures/single:amd64",
                           audit_formats=["json", "html"])
    run = playbook(AUDIT_PLAYBOOK, extra_vars=variables, check=True)
    assert run.rc != 0
    assert not report_dir.exists()
    assert run.result(SUMMARY)["msg"].endswith(
        f"check mode: no report written (a real run writes {report_dir}: audit.json, audit.html)")
    assert run.result(FAIL)["msg"] == (f"1 error policy failures: {open_registry.host}/fixtures/single:amd64: "
                                       "required-platforms (check mode: no report written)")


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
    assert run.result(FAIL)["msg"].startswith(
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
    errors = run.result(VALIDATE)["argument_errors"]
    # ansible-core < 2.19 names the type as <class 'dict'>.
    assert re.match(r"argument 'audit_images' is of type (dict|<class 'dict'>) and we were unable to convert to list",
                    errors[0]), errors[0]
    assert errors[1].startswith("audit_registry_options.user. Supported parameters include: ca_path, concurrency")
    assert GATHER not in [t["task"] for t in run.tasks]


CHECK_NAMES = ROLE + "Check that every audit_ variable is one the role knows"


@pytest.mark.parametrize("typo, meant", [("audit_require_platform", "audit_require_platforms"),
                                         ("audit_max_age_day", "audit_max_age_days")])
def test_a_misspelt_optional_variable_fails_the_role_naming_the_closest_known_name(playbook, tmp_path, typo, meant):
    """Without the check the misspelt variable would be ignored and the audit would pass."""
    run = playbook(AUDIT_PLAYBOOK, extra_vars={"audit_images": ["127.0.0.1:9/x/y:1"],
                                               "audit_report_dir": str(tmp_path / "report"), typo: 1})
    assert run.rc != 0
    assert run.result(CHECK_NAMES)["msg"] == (
        f"{typo} is not a variable of role archfleet.multiarch.audit; did you mean {meant}?")
    assert GATHER not in [t["task"] for t in run.tasks]
    assert not (tmp_path / "report").exists()


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


@pytest.fixture(scope="module")
def broken_registry():
    """A registry holding broken/app:latest, an index whose arm64 child manifest was deleted, and ok/app:latest."""
    with Registry() as registry:
        children = [push_image(registry.url, "broken/app", platform=p) for p in ("linux/amd64", "linux/arm64")]
        push_index(registry.url, "broken/app", "latest", children)
        response = requests.delete(f"{registry.url}/v2/broken/app/manifests/{children[1]['digest']}", timeout=30)
        assert response.status_code == 202, response.text
        registry.deleted = children[1]["digest"]
        ok = [push_image(registry.url, "ok/app", platform=p) for p in ("linux/amd64", "linux/arm64")]
        push_index(registry.url, "ok/app", "latest", ok)
        yield registry


def test_a_broken_image_is_reported_with_its_error_and_fails_readable(playbook, broken_registry, tmp_path):
    h = broken_registry.host
    report_dir = tmp_path / "report"
    run = playbook(AUDIT_PLAYBOOK, extra_vars=audit_vars(
        broken_registry, report_dir, "ok/app:latest", "broken/app:latest", "ok/app:gone",
        audit_require_platforms=["linux/amd64"]))
    assert run.rc != 0
    assert run.result(FAIL)["msg"].startswith(
        f"2 error policy failures: {h}/broken/app:latest: readable, {h}/ok/app:gone: image-exists (report: ")
    report = json.loads((report_dir / "audit.json").read_text())
    ok, broken, gone = report["images"]
    assert "error" not in ok and ok["status"] == "warning"
    assert broken["exists"] is True and broken["error"]["code"] == "MANIFEST_UNKNOWN"
    assert broken["missing_children"] == [broken_registry.deleted]
    assert [r["policy"] for r in broken["results"] if not r["passed"]] == ["readable", "source-annotation"]
    assert gone["exists"] is False and gone["kind"] == "missing"
    html = (report_dir / "audit.html").read_text()
    assert f'<div class="image-error"><b>MANIFEST_UNKNOWN</b>: {h}/broken/app:latest lists 1 child manifest(s) ' \
           f'missing from the registry: {broken_registry.deleted}</div>' in html
    markdown = (report_dir / "audit.md").read_text()
    assert f"| MANIFEST_UNKNOWN: {h}/broken/app:latest lists 1 child manifest(s) missing" in markdown
    junit = ElementTree.parse(report_dir / "audit.junit.xml").getroot()
    readable = [case for case in junit.iter("testcase")
                if case.get("classname") == f"{h}/broken/app:latest" and case.get("name") == "readable"][0]
    assert broken_registry.deleted in readable.find("failure").get("message")


def test_unreachable_registry_still_writes_every_report(playbook, tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    report_dir = tmp_path / "report"
    run = playbook(AUDIT_PLAYBOOK, extra_vars={
        "audit_images": [f"{dead}/team/app:1", f"{dead}/team/worker:1"], "audit_report_dir": str(report_dir),
        "audit_now": NOW, "audit_registry_options": {"retries": 0, "timeout": 5}})
    assert run.rc != 0
    assert run.task(GATHER)["status"] == "failed"
    assert run.result(FAIL)["msg"].startswith(f"2 error policy failures: {dead}/team/app:1: readable, "
                                              f"{dead}/team/worker:1: readable (report: ")
    assert sorted(path.name for path in report_dir.iterdir()) == ["audit.html", "audit.json", "audit.junit.xml",
                                                                  "audit.md"]
    images = json.loads((report_dir / "audit.json").read_text())["images"]
    assert [image["error"]["code"] for image in images] == ["UNREACHABLE", "UNREACHABLE"]
    assert all(image["exists"] is None and "cannot reach registry" in image["error"]["message"] for image in images)
    assert "not read" in (report_dir / "audit.md").read_text()


def test_role_in_a_play_with_module_defaults_and_chosen_formats(playbook, tmp_path):
    with Registry(auth="htpasswd", tls=True) as registry:
        push_image(registry.url, "team/app", "1", auth=registry.auth_tuple, verify=registry.verify)
        report_dir = tmp_path / "report"
        run = playbook(play(
            {"name": "audit", "ansible.builtin.include_role": {"name": "archfleet.multiarch.audit"},
             "vars": {"audit_images": [f"{registry.host}/team/app:1"], "audit_report_dir": str(report_dir),
                      "audit_formats": ["junit", "md"], "audit_fail_on_error": False,
                      "audit_registry_options": {"timeout": 9, "retries": 1},
                      "audit_policies": [{"name": "exists", "expression": "exists"}]}},
            module_defaults={"group/archfleet.multiarch.registry": {
                "username": registry.username, "password": registry.password,
                "insecure_registries": [registry.host]}},
            vars={"ansible_python_interpreter": "{{ ansible_playbook_python }}"}))
        assert run.rc == 0, run.output
        assert sorted(path.name for path in report_dir.iterdir()) == ["audit.junit.xml", "audit.md"]
        junit = ElementTree.parse(report_dir / "audit.junit.xml").getroot()
        assert (junit.get("tests"), junit.get("failures")) == ("1", "0"), (report_dir / "audit.md").read_text()
        # audit_registry_options win option by option; the rest still come from the play's module_defaults.
        arguments = run.result(GATHER)["invocation"]["module_args"]
        assert (arguments["timeout"], arguments["retries"], arguments["insecure_registries"]) == (9, 1, [registry.host])
        assert arguments["username"] == registry.username and arguments["password"] != registry.password
        assert registry.password not in run.output


def test_supply_chain_policies_and_columns(playbook, tmp_path):
    """audit_referrers: signed / SBOM / provenance policies and report columns, from real referrers (tag schema)."""
    from harness.referrers import build_supply_chain
    with Registry() as registry:
        build_supply_chain(registry, "supply/app")
        report_dir = tmp_path / "report"
        variables = audit_vars(registry, report_dir, "supply/app:signed", "supply/app:buildx", "supply/app:release",
                               audit_require_platforms=[], audit_referrers=True, audit_fail_on_error=False)
        run = playbook(AUDIT_PLAYBOOK, extra_vars=variables, cwd=tmp_path)
        assert run.rc == 0, run.output
    document = json.loads((report_dir / "audit.json").read_text())
    assert document["supply_chain"] is True
    outcomes = {i["canonical"].rsplit(":", 1)[1]: {r["policy"]: r["outcome"] for r in i["results"]
                                                   if r["policy"] in ("signed", "has-sbom", "has-provenance",
                                                                      "signature-present")}
                for i in document["images"]}
    # The fixtures' signatures are attached but no keys are given: present, not signed (verified).
    assert outcomes["signed"] == {"signed": "fail", "has-sbom": "pass", "has-provenance": "fail",
                                  "signature-present": "pass"}
    assert outcomes["buildx"] == {"signed": "fail", "has-sbom": "pass", "has-provenance": "pass",
                                  "signature-present": "fail"}
    assert outcomes["release"] == {"signed": "fail", "has-sbom": "fail", "has-provenance": "fail",
                                   "signature-present": "pass"}
    cells = {i["canonical"].rsplit(":", 1)[1]: i["supply_chain_cells"] for i in document["images"]}
    assert cells["release"] == {"signed": "no", "sbom": "partial", "provenance": "no"}
    markdown = (report_dir / "audit.md").read_text()
    assert "| signed | SBOM | provenance |" in markdown and "| no | partial | no |" in markdown
    assert "<th>signed</th><th>SBOM</th><th>provenance</th>" in (report_dir / "audit.html").read_text()


def test_since_the_last_audit_summary_by_repository_and_severity_per_policy(playbook, open_registry, tmp_path):
    """Given the previous audit.json: new failures, fixed ones and changed digests, in audit.json and first in the
    HTML report; the HTML summarises failures by repository and policy and gives each failing policy of an image
    its own severity."""
    url, h = open_registry.url, open_registry.host
    repository = f"since/app-{tmp_path.name[-12:].lower().replace('_', '-')}"
    amd64 = push_image(url, repository, "1", platform="linux/amd64")
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    required = ["linux/amd64", "linux/arm64"]
    first = playbook(AUDIT_PLAYBOOK, extra_vars=audit_vars(
        open_registry, first_dir, f"{repository}:1", "fixtures/multi:latest", audit_require_platforms=required,
        audit_fail_on_error=False))
    assert first.rc == 0, first.output
    assert "since" not in json.loads((first_dir / "audit.json").read_text())

    # The release gets its arm64 platform (fixed, digest changed); a new image is missing (a new failure).
    arm64 = push_image(url, repository, platform="linux/arm64")
    index = push_index(url, repository, "1", [amd64, arm64])
    second = playbook(AUDIT_PLAYBOOK, extra_vars=audit_vars(
        open_registry, second_dir, f"{repository}:1", "fixtures/multi:latest", "fixtures/gone:1",
        audit_require_platforms=required, audit_fail_on_error=False,
        audit_previous_report=str(first_dir / "audit.json")))
    assert second.rc == 0, second.output
    since = json.loads((second_dir / "audit.json").read_text())["since"]
    assert since["previous_now"] == json.loads((first_dir / "audit.json").read_text())["now"]
    assert {(f["image"], f["policy"]) for f in since["new_failures"]} >= {(f"{h}/fixtures/gone:1", "image-exists")}
    assert not [f for f in since["new_failures"] if f["image"] != f"{h}/fixtures/gone:1"]
    assert (f"{h}/{repository}:1", "required-platforms", "error") in {
        (f["image"], f["policy"], f["severity"]) for f in since["fixed_failures"]}
    assert since["changed_digests"] == [{"image": f"{h}/{repository}:1", "before": amd64["digest"],
                                         "after": index["digest"]}]

    html = (second_dir / "audit.html").read_text()
    # What changed comes before the tables.
    assert html.index('id="since"') < html.index('id="summary"') < html.index('id="matrix"')
    assert f'<li class="new-failure"><span class="badge error">error</span> <code>{h}/fixtures/gone:1</code>: image-exists' in html
    assert f'<code>{h}/{repository}:1</code>: required-platforms (error)' in html
    # Summary by repository and policy: the missing repository fails image-exists, 1 of 1.
    summary = html.split('id="summary"', 1)[1].split("</table>", 1)[0]
    gone_row = summary.split(f"<code>{h}/fixtures/gone</code>", 1)[1].split("</tr>", 1)[0]
    assert '<td class="result error" data-failed="1">1 / 1</td>' in gone_row
    # The coverage chart: required platforms present per repository (the released app has both of its one tag's).
    chart = html.split('<svg id="coverage"', 1)[1].split("</svg>", 1)[0]
    assert f'data-repository="{h}/{repository}" data-present="2" data-total="2"' in chart
    assert f'data-repository="{h}/fixtures/gone" data-present="0" data-total="2"' in chart
    # Severity per failing policy in the image's status cell: fixtures/multi fails a warning policy, shown as one.
    matrix = html.split('id="matrix"', 1)[1].split("</table>", 1)[0]
    multi_row = matrix.split(f"<code>{h}/fixtures/multi:latest</code>", 1)[1].split("</tr>", 1)[0]
    assert ('<small class="failure warning" data-severity="warning"><span class="badge">warning</span>'
            'source-annotation</small>') in multi_row

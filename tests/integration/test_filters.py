"""Every filter of the collection applied to REGISTERED results, as playbooks use them.

Registered results and templated values reach a filter as Ansible's own types (AnsibleUnsafeText on
ansible-core 2.17/2.18, tagged and lazy types on 2.19), not as plain Python ones: JMESPath's string
functions (starts_with, join, sort_by, length of a string) type-check by exact type and used to fail
on 2.17/2.18. This file runs in every venv of the version matrix (make test-matrix).
"""
from __future__ import annotations

from harness.ansible_run import play, task

QUERIES = {
    "starts_with": "images[?starts_with(canonical, '{host}/fixtures/s')].canonical",
    "string_length": "length(images[0].canonical)",
    "joined": "join(', ', images[0].platforms)",
    "sorted_by_platform": "sort_by(images[0].manifests, &platform_string)[].platform_string",
    "sorted_by_created": "sort_by(images[0].manifests, &config.created)[].config.created | [0]",
    "platform_count": "length(images[0].platforms)",
}


def test_every_filter_on_registered_results(playbook, open_registry):
    h = open_registry.host
    multi, single = f"{h}/fixtures/multi:latest", f"{h}/fixtures/single:amd64"
    query_facts = {name: "{{ inspected | archfleet.multiarch.manifest_query(%r) }}" % expression.format(host=h)
                   for name, expression in QUERIES.items()}
    policies = [
        {"name": "from-fixtures", "expression": f"starts_with(canonical, '{h}/fixtures/')"},
        {"name": "named-platforms", "expression": "length(join(',', platforms)) > `11`", "severity": "warning"},
        {"name": "oldest-first", "expression": "sort_by(manifests, &platform_string)[0].platform_string == 'linux/amd64'",
         "severity": "info"},
    ]
    run = playbook(play(
        dict(task("inspect", "docker_manifest_info", images=[multi, single], config=True), register="inspected"),
        {"name": "query", "ansible.builtin.set_fact": query_facts},
        {"name": "audit", "ansible.builtin.set_fact": {
            "audited": "{{ inspected | archfleet.multiarch.manifest_audit(policies, now='2024-03-01T00:00:00Z',"
                       " require_platforms=['linux/amd64']) }}"},
         "vars": {"policies": policies}},
        {"name": "parse", "ansible.builtin.set_fact": {
            "refs": "{{ inspected.images | map(attribute='canonical') | map('archfleet.multiarch.image_ref') | list }}",
            "platforms": "{{ inspected.images[0].platforms | map('archfleet.multiarch.platform') | list }}",
            "targets": "{{ inspected.images[0].platforms | map('archfleet.multiarch.qemu_target', missing='') | list }}",
        }},
    ))
    assert run.rc == 0, run.output

    facts = run.result("query")["ansible_facts"]
    # ansible-core < 2.19 renders a template whose whole value is a number as a string.
    facts.update(string_length=int(facts["string_length"]), platform_count=int(facts["platform_count"]))
    assert facts["starts_with"] == [single]
    assert facts["string_length"] == len(multi)
    assert facts["joined"] == "linux/amd64, linux/arm64/v8, linux/arm/v7, linux/ppc64le, linux/s390x"
    assert facts["sorted_by_platform"] == ["linux/amd64", "linux/arm/v7", "linux/arm64/v8", "linux/ppc64le",
                                           "linux/s390x"]
    assert facts["sorted_by_created"] == "2024-01-01T00:00:00Z"
    assert facts["platform_count"] == 5

    audited = run.result("audit")["ansible_facts"]["audited"]
    assert audited["summary"]["evaluations"] == 6
    assert audited["summary"]["failures"] == [{"image": single, "policy": "named-platforms", "severity": "warning"}]
    assert audited["platform_columns"][0] == "linux/amd64"

    parsed = run.result("parse")["ansible_facts"]
    assert [(ref["registry"], ref["repository"], ref["tag"]) for ref in parsed["refs"]] == [
        (h, "fixtures/multi", "latest"), (h, "fixtures/single", "amd64")]
    assert [(p["architecture"], p["variant"]) for p in parsed["platforms"]] == [
        ("amd64", None), ("arm64", "v8"), ("arm", "v7"), ("ppc64le", None), ("s390x", None)]
    assert parsed["targets"] == ["x86_64", "aarch64", "arm", "ppc64le", "s390x"]

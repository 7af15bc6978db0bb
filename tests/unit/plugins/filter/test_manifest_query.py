"""The manifest_query and manifest_audit filter wrappers: input forms and AnsibleFilterError messages."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.filter.manifest_audit import FilterModule as AuditFilters
from ansible_collections.archfleet.multiarch.plugins.filter.manifest_query import FilterModule as QueryFilters

manifest_query = QueryFilters().filters()["manifest_query"]
manifest_audit = AuditFilters().filters()["manifest_audit"]

RESULT = {"changed": False, "images": [{"canonical": "r/app:1", "exists": True, "kind": "image",
                                        "platforms": ["linux/amd64"], "manifests": []}]}


def test_manifest_query():
    assert manifest_query(RESULT, "images[0].platforms[0]") == "linux/amd64"
    assert manifest_query(RESULT, "images[?kind=='index']") == []


def test_manifest_query_errors_are_filter_errors_naming_the_expression():
    with pytest.raises(AnsibleFilterError, match=r"^manifest_query: invalid JMESPath expression 'images\[': "
                                                 r"the expression is incomplete at position 7 \(its end\)$"):
        manifest_query(RESULT, "images[")


def test_manifest_audit_accepts_a_result_or_its_images_and_defaults_now_to_the_current_time():
    policies = [{"name": "index", "expression": "kind == 'index'", "severity": "warning"}]
    from_result = manifest_audit(RESULT, policies, now="2024-06-01T00:00:00Z")
    assert from_result == manifest_audit(RESULT["images"], policies, now="2024-06-01T00:00:00Z")
    assert from_result["summary"]["failures"] == [{"image": "r/app:1", "policy": "index", "severity": "warning"}]
    assert manifest_audit(RESULT, policies)["now"].endswith("+00:00")


def test_manifest_audit_errors_are_filter_errors_naming_the_policy():
    with pytest.raises(AnsibleFilterError, match=r"^manifest_audit: policy 'p' \(policies\[0\]\) has severity 'high'"):
        manifest_audit(RESULT, [{"name": "p", "expression": "exists", "severity": "high"}])

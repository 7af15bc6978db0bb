"""The audit_since filter: what changed between two audit documents."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.filter.audit_since import audit_since

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def document(now, images, failures):
    return {"now": now, "images": images, "summary": {"failures": failures}}


def test_new_fixed_and_changed():
    previous = document("t0", [{"canonical": "r/a:1", "digest": A}, {"canonical": "r/b:1", "digest": A},
                               {"canonical": "r/gone:1", "digest": A}],
                        [{"image": "r/a:1", "policy": "arm64"}, {"image": "r/b:1", "policy": "signed"}])
    current = document("t1", [{"canonical": "r/a:1", "digest": B}, {"canonical": "r/b:1", "digest": A},
                              {"canonical": "r/new:1", "digest": B}],
                       [{"image": "r/b:1", "policy": "signed"}, {"image": "r/a:1", "policy": "signed"}])
    since = audit_since(current, previous)
    assert since == {"previous_now": "t0", "new_failures": [{"image": "r/a:1", "policy": "signed"}],
                     "fixed_failures": [{"image": "r/a:1", "policy": "arm64"}],
                     "changed_digests": [{"image": "r/a:1", "before": A, "after": B}]}


def test_refuses_what_is_not_a_document():
    with pytest.raises(AnsibleFilterError, match="expected two audit documents"):
        audit_since([], {})

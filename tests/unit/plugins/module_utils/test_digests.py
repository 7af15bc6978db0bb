"""One manifest HEAD per reference, tokens per registry up front, a reason for what does not exist."""
from fake_registry import FakeRegistry

from ansible_collections.archfleet.multiarch.plugins.module_utils._digests import head_digests
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference

REG = "registry.example"


def test_one_head_per_reference_in_order():
    fake = FakeRegistry()
    amd64 = fake.add_image(parse_reference(REG + "/team/app"), "amd64", tag="amd64")
    arm64 = fake.add_image(parse_reference(REG + "/team/app"), "arm64", tag="arm64")
    base = fake.add_image(parse_reference("other.example/base"), "amd64", tag="1")
    refs = [parse_reference(text) for text in (REG + "/team/app:arm64", "other.example/base:1",
                                               REG + "/team/app:amd64", REG + "/team/app:gone",
                                               REG + "/team/app@" + amd64[0])]
    found = head_digests(fake, refs, concurrency=3)
    expected = [arm64[0], base[0], amd64[0], None, amd64[0]]
    assert [None if isinstance(response, str) else response.digest for response in found] == expected
    assert found[3] == "%s/team/app:gone does not exist (no such tag or repository in registry %s)" % (REG, REG)
    assert found[0].size == arm64[1] and found[0].body is None
    assert sorted(call for call in fake.calls if call[0] == "authorize") == [
        ("authorize", "other.example", (("base", ("pull",)),)),
        ("authorize", REG, (("team/app", ("pull",)),))]
    assert [call[0] for call in fake.calls if call[0] != "authorize"] == ["head_manifest"] * 5


def test_no_reference_no_request():
    fake = FakeRegistry()
    assert head_digests(fake, []) == [] and fake.calls == []

"""The supply-chain columns and built-in policies of the audit over docker_manifest_info facts (referrers=true)."""
import pytest
import yaml

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._policy import audit, supply_chain_cells

from pathlib import Path

DEFAULTS = Path(__file__).resolve().parents[4] / "roles" / "audit" / "defaults" / "main.yml"
NOW = "2026-01-01T00:00:00Z"


def chain(signed=False, sbom=False, provenance=False, present=None):
    return {"signed": signed, "signers": ["sha256:" + "5" * 64] if signed else [],
            "signature_present": signed if present is None else present, "sbom": sbom, "provenance": provenance}


def image(name, top, platforms):
    return {"canonical": name, "exists": True, "kind": "index", "platforms": [], "annotations": {},
            "supply_chain": top, "referrers": [],
            "manifests": [{"kind": "image", "digest": "sha256:%064d" % index, "supply_chain": entry,
                           "platform": {"os": "linux", "architecture": arch}, "platform_string": "linux/" + arch}
                          for index, (arch, entry) in enumerate(platforms)]
            + [{"kind": "artifact", "digest": "sha256:" + "f" * 64, "platform": {"os": "linux", "architecture": "s390x"}}]}


def policies():
    text = DEFAULTS.read_text().replace("{{ audit_max_age_days | int }}", "90")
    return yaml.safe_load(text)["audit_supply_chain_policies"]


def test_cells_say_yes_partial_no_and_nothing_without_referrers():
    signed_index = image("a", chain(signed=True), [("amd64", chain(sbom=True)), ("arm64", chain())])
    assert supply_chain_cells(signed_index) == {"signed": "yes", "sbom": "partial", "provenance": "no"}
    every = image("b", chain(), [("amd64", chain(provenance=True)), ("arm64", chain(provenance=True))])
    assert supply_chain_cells(every)["provenance"] == "yes"
    assert supply_chain_cells({"canonical": "c", "manifests": []}) is None


def test_built_in_policies_per_index_or_every_platform():
    images = [image("signed-index", chain(signed=True), [("amd64", chain(sbom=True, provenance=True))]),
              image("per-platform", chain(), [("amd64", chain(signed=True, sbom=True)), ("arm64", chain(signed=True))]),
              image("unverified", chain(present=True), [("amd64", chain())]),
              {"canonical": "gone", "exists": False, "manifests": [], "platforms": []}]
    result = audit(images, policies(), NOW)
    outcomes = {i["canonical"]: {r["policy"]: r["outcome"] for r in i["results"]} for i in result["images"]}
    assert outcomes["signed-index"] == {"signed": "pass", "has-sbom": "pass", "has-provenance": "pass",
                                        "signature-present": "pass"}
    assert outcomes["per-platform"] == {"signed": "pass", "has-sbom": "fail", "has-provenance": "fail",
                                        "signature-present": "pass"}
    # A signature is attached but none verified: signed fails, signature-present (the old meaning) passes.
    assert outcomes["unverified"] == {"signed": "fail", "has-sbom": "fail", "has-provenance": "fail",
                                      "signature-present": "pass"}
    assert outcomes["gone"] == {"signed": "n/a", "has-sbom": "n/a", "has-provenance": "n/a",
                                "signature-present": "n/a"}
    assert result["supply_chain"] is True
    # An artifact entry with a platform is neither a platform column nor a missing platform.
    assert result["platform_columns"] == ["linux/amd64", "linux/arm64"]


@pytest.mark.parametrize("name", ["signed", "has-sbom", "has-provenance", "signature-present"])
def test_each_policy_is_documented_with_a_severity(name):
    found = [p for p in policies() if p["name"] == name]
    assert len(found) == 1 and found[0]["severity"] in ("warning", "info") and found[0]["description"]

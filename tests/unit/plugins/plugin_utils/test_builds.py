"""plugin_utils._builds: the data of the build_images and publish_manifests roles, as pure functions."""
import pytest

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import (
    BuildDataError,
    build_results,
    index_platforms,
    index_results,
    platform_builds,
    platform_conflicts,
    platform_name,
    release_plan,
    release_sources,
)

A, B, C = ("sha256:" + x * 64 for x in "abc")


def test_platform_builds_normalises_and_names_the_per_platform_tags():
    builds = platform_builds(["linux/amd64", "aarch64", "linux/arm/v7", "linux/arm64/v8"], "reg.lan/app", "1.0", "h1")
    assert [b["platform"] for b in builds] == ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm64/v8"]
    assert [b["image"] for b in builds] == ["reg.lan/app:1.0-linux-amd64", "reg.lan/app:1.0-linux-arm64",
                                            "reg.lan/app:1.0-linux-arm-v7", "reg.lan/app:1.0-linux-arm64-v8"]
    assert builds[2] == {"given": "linux/arm/v7", "platform": "linux/arm/v7", "os": "linux", "architecture": "arm",
                         "variant": "v7", "host": "h1", "image": "reg.lan/app:1.0-linux-arm-v7",
                         "reference": "reg.lan/app:1.0-linux-arm-v7"}
    assert builds[0]["variant"] == ""


def test_platform_builds_refuses_a_bad_name_naming_it():
    with pytest.raises(BuildDataError, match="invalid platform 'linux/arm46'"):
        platform_builds(["linux/amd64", "linux/arm46"], "app", "1", "h")
    with pytest.raises(BuildDataError, match="must be a list"):
        platform_builds("linux/amd64", "app", "1", "h")


def test_platform_conflicts_sorted_by_platform_hosts_in_order():
    builds = [{"platform": "linux/s390x", "host": "h2"}, {"platform": "linux/amd64", "host": "h1"},
              {"platform": "linux/arm64", "host": "h3"}, {"platform": "linux/s390x", "host": "h3"},
              {"platform": "linux/arm64", "host": "h1"}]
    assert platform_conflicts(builds) == [{"platform": "linux/arm64", "hosts": ["h3", "h1"]},
                                          {"platform": "linux/s390x", "hosts": ["h2", "h3"]}]
    assert platform_conflicts(builds[:3]) == []


def builds(*platforms):
    return platform_builds(list(platforms), "reg.lan/app", "1", "h1")


def test_build_results_pushed_held_and_pending():
    before = [{"stdout": ""}, {"stdout": "sha256:" + "e" * 64}, {"stdout": ""}]
    built = [{"stdout_lines": ["sha256:" + "d" * 64]}, {"stdout_lines": ["sha256:" + "e" * 64]}, {"skipped": True}]
    pushed = [{"stdout": "1-linux-amd64: digest: %s size: 528" % A},
              {"skipped": True, "skip_reason": "Conditional result was False"}, {"skipped": True}]
    registry = [{"digest": None}, {"digest": B}, {"digest": None}]
    results = build_results(builds("linux/amd64", "linux/arm64", "linux/s390x"), "reg.lan/app", "1", "h1", "docker",
                            before, built, pushed, registry)
    assert [(r["digest"], r["pending"]) for r in results] == [(A, False), (B, False), ("", True)]
    assert results[0] == {"platform": "linux/amd64", "image": "reg.lan/app:1-linux-amd64", "digest": A,
                          "reference": "reg.lan/app@" + A, "repository": "reg.lan/app", "tag": "1", "host": "h1",
                          "pending": False}
    assert all("local_reference" not in r for r in results)


def test_build_results_podman_digestfile_and_local_reference():
    results = build_results(builds("linux/arm64", "linux/amd64"), "reg.lan/app", "1", "h1", "podman",
                            [{"stdout": ""}, {"stdout": "f" * 64 + "\n"}],
                            [{"stdout_lines": ["STEP 1/2", "c" * 64]}, {"stdout_lines": []}],
                            [{"stdout": A}, {"skipped": True, "skip_reason": "held"}], [{}, {"digest": B}])
    assert [(r["digest"], r["local_reference"]) for r in results] == [(A, "c" * 64), (B, "f" * 64)]


def test_build_results_refuses_lists_that_do_not_line_up_and_a_push_without_digest():
    with pytest.raises(BuildDataError, match="one result per build"):
        build_results(builds("linux/amd64"), "r", "1", "h", "docker", [], [], [], [])
    with pytest.raises(BuildDataError, match="docker push of reg.lan/app:1-linux-amd64 printed no digest"):
        build_results(builds("linux/amd64"), "r", "1", "h", "docker", [{}], [{}], [{"stdout": "pushed"}], [{}])


def test_index_results_take_each_platform_from_the_index():
    index = {"exists": True, "digest": C, "manifests": [{"platform_string": "linux/amd64", "digest": A},
                                                        {"platform_string": "linux/arm64", "digest": B}]}
    results = index_results(builds("linux/arm64", "linux/s390x"), "reg.lan/app", "1", "h1", "reg.lan/app:1-buildx-h1",
                            index, False)
    assert [(r["digest"], r["reference"], r["from_index"]) for r in results] == [
        (B, "reg.lan/app@" + C, True), ("", "", True)]
    assert index_results(builds("linux/arm64"), "r", "1", "h", "i", index, True)[0]["digest"] == ""


def test_index_platforms_leaves_attestations_out():
    document = {"manifests": [
        {"digest": A, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": B, "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": A}},
        {"digest": C, "platform": {"os": "linux", "architecture": "amd64"}}]}
    assert index_platforms(document) == {"linux/arm/v7": A, "linux/amd64": C}
    with pytest.raises(BuildDataError, match="needs an index document"):
        index_platforms([])


def test_release_sources_pin_by_digest_and_keep_index_attestations():
    assert release_sources([{"platform": "linux/amd64", "reference": "r@" + A},
                            {"platform": "linux/arm64", "reference": "r@" + C, "from_index": True}]) == [
        {"image": "r@" + A, "platform": "linux/amd64"}, {"image": "r@" + C, "platforms": ["linux/arm64"]}]


def result(host, platform, digest=A):
    return {"host": host, "platform": platform, "reference": "r@" + digest}


def test_release_plan_complete():
    plan = release_plan([{"host": "h1", "results": [result("h1", "linux/amd64")], "platforms": ["amd64"]},
                         {"host": "h2", "results": [result("h2", "linux/arm64", B)], "platforms": None}])
    assert plan["complete"] is True and plan["missing_hosts"] == [] and plan["missing_platforms"] == []
    assert plan["platforms"] == ["linux/amd64", "linux/arm64"] and len(plan["sources"]) == 2


def test_release_plan_names_what_a_silent_host_was_to_build_and_what_is_required():
    plan = release_plan([{"host": "h1", "results": [result("h1", "linux/amd64")], "platforms": ["linux/amd64"]},
                         {"host": "h2", "results": None, "platforms": ["armhf", "ppc64el"]},
                         {"host": "h3", "results": None, "platforms": None}],
                        required=["linux/amd64", "linux/s390x"])
    assert plan["complete"] is False
    assert plan["missing_hosts"] == [{"host": "h2", "platforms": ["linux/arm", "linux/ppc64le"]},
                                     {"host": "h3", "platforms": None}]
    assert plan["missing_platforms"] == ["linux/arm", "linux/ppc64le", "linux/s390x"]
    assert plan["sources"] == [{"image": "r@" + A, "platform": "linux/amd64"}]


def test_release_plan_reports_conflicts_and_refuses_bad_required_platforms():
    plan = release_plan([{"host": "h1", "results": [result("h1", "linux/amd64")]},
                         {"host": "h2", "results": [result("h2", "linux/amd64", B)]}])
    assert plan["conflicts"] == [{"platform": "linux/amd64", "hosts": ["h1", "h2"]}]
    with pytest.raises(BuildDataError, match="invalid platform 'linux/arm46'"):
        release_plan([], required=["linux/arm46"])


def test_platform_name():
    assert platform_name({"os": "linux", "architecture": "arm", "variant": "v7"}) == "linux/arm/v7"
    assert platform_name("aarch64") == "linux/arm64"


def test_held_results_have_no_digest_and_count_as_missing():
    results = build_results(builds("linux/amd64"), "reg.lan/app", "1", "h1", "docker", [{"stdout": ""}],
                            [{"stdout_lines": ["sha256:" + "d" * 64]}], [{"skipped": True, "skip_reason": "held"}],
                            [{"digest": A}], held=True)
    assert results[0]["held"] is True and results[0]["digest"] == "" and results[0]["reference"] == ""
    assert results[0]["pending"] is False
    index = {"exists": True, "digest": C, "manifests": [{"platform_string": "linux/amd64", "digest": A}]}
    assert index_results(builds("linux/amd64"), "r", "1", "h1", "i", index, False, held=True)[0]["digest"] == ""
    plan = release_plan([{"host": "h1", "results": results}, {"host": "h2", "results": None, "platforms": ["s390x"]}],
                        required=["linux/amd64"])
    assert plan["sources"] == [] and plan["held"] == results
    assert plan["missing_platforms"] == ["linux/amd64", "linux/s390x"] and plan["missing_required"] == ["linux/amd64"]

"""A hostile or broken registry gets nowhere (issue 21, section 2).

One real ``ansible-playbook`` run of docker_manifest_info reads one image per misbehaviour from one hostile
registry (harness/hostile.py, real sockets on loopback); each test checks that image's answer: one clear
error for that image, the task itself green, nothing written. Copies (docker_manifest_create), token
services, redirects and enumeration get runs of their own; memory is measured in-process, where the same
transport reads the 100 MiB bodies.
"""
from __future__ import annotations

import json
import time

import pytest

from harness.ansible_run import play, run_playbook, task
from harness.hostile import (
    MIB,
    OCI_INDEX,
    OCI_MANIFEST,
    Hostile,
    canonical,
    endless,
    trickle,
    zeros,
)
from harness.pki import make_server_tls

TIMEOUT = 3          # the tasks' timeout option: also each body's deadline


def _big_json(size):
    return b'{"schemaVersion": 2, "pad": "' + b"x" * size + b'"}'


def _serve(body, media_type=OCI_MANIFEST, status=200, headers=None):
    def script(h):
        h.answer(status, body, headers, media_type)
    return script


def _build(registry):
    """The misbehaviours, one repository each: ``{case: image reference}``."""
    images = {}

    def case(name, reference=None):
        images[name] = reference or "%s/%s:1" % (registry.host, name)

    registry.add_image("ok", "1")
    case("ok")
    # -- sizes -------------------------------------------------------------------------------
    registry.on("GET", r"/v2/big-manifest/manifests/.*", _serve(_big_json(5 * MIB)))
    case("big-manifest")
    registry.on("GET", r"/v2/big-manifest-chunked/manifests/.*",
                lambda h: h.stream_chunked(200, zeros(5 * MIB), content_type=OCI_MANIFEST))
    case("big-manifest-chunked")
    registry.on("GET", r"/v2/endless/manifests/.*", lambda h: h.stream_chunked(200, endless()))
    case("endless")
    registry.on("GET", r"/v2/stall/manifests/.*",
                lambda h: h.stream_sized(200, 4000, trickle(b"{" * 4000, 0.2), content_type=OCI_MANIFEST))
    case("stall")
    config = registry.add_image("big-config", "1")
    big_config_digest = json.loads(registry.manifests[("big-config", "1")][1])["config"]["digest"]
    registry.on("GET", r"/v2/big-config/blobs/" + big_config_digest,
                lambda h: h.stream_sized(200, 9 * MIB, zeros(9 * MIB), content_type="application/octet-stream"))
    case("big-config")
    registry.on("GET", r"/v2/big-error/manifests/.*",
                lambda h: h.stream_sized(400, 100 * MIB, zeros(100 * MIB)))
    case("big-error")
    entries = [{"mediaType": OCI_MANIFEST, "digest": config["digest"], "size": config["size"],
                "platform": {"architecture": "amd64", "os": "linux", "variant": "v%d" % i}} for i in range(100000)]
    registry.on("GET", r"/v2/index-100k/manifests/.*",
                _serve(canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}), OCI_INDEX))
    case("index-100k")
    # -- JSON --------------------------------------------------------------------------------
    registry.put_manifest("deep-json", b"[" * 100000 + b"]" * 100000, OCI_MANIFEST, "1")
    case("deep-json")
    ok_body = registry.manifests[("ok", "1")][1]
    registry.put_manifest("duplicate-keys", ok_body[:-2] + b',\n  "schemaVersion": 1\n}', OCI_MANIFEST, "1")
    case("duplicate-keys")
    registry.put_manifest("invalid-utf8", b'{"schemaVersion": 2, "mediaType": "\xff\xfe"}', OCI_MANIFEST, "1")
    case("invalid-utf8")
    registry.add_image("nan-config", "1", config_extra={"created": "NaN-to-be"})
    manifest = json.loads(registry.manifests[("nan-config", "1")][1])
    nan_digest = manifest["config"]["digest"]
    registry.blobs[("nan-config", nan_digest)] = registry.blobs[("nan-config", nan_digest)].replace(
        b'"NaN-to-be"', b"NaN")
    case("nan-config")      # the config no longer matches its digest: refused before it is parsed
    nan_body = canonical({"architecture": "amd64", "os": "linux", "size": float("nan")}).replace(b"NaN", b"NaN")
    nan_descriptor = registry.put_blob("nan-config2", nan_body)
    body = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": dict(nan_descriptor, mediaType="application/vnd.oci.image.config.v1+json"),
                      "layers": []})
    registry.put_manifest("nan-config2", body, OCI_MANIFEST, "1")
    case("nan-config2")
    # -- digests -----------------------------------------------------------------------------
    wanted = registry.add_image("lying-get")
    registry.on("GET", r"/v2/lying-get/manifests/sha256:.*", _serve(registry.manifests[("ok", "1")][1]))
    case("lying-get", "%s/lying-get@%s" % (registry.host, wanted["digest"]))
    sha512 = registry.add_image("sha512", algorithm="sha512")
    case("sha512", "%s/sha512@%s" % (registry.host, sha512["digest"]))
    index = registry.add_index("bad-child-digest", [
        {"mediaType": OCI_MANIFEST, "digest": "md5:0123456789abcdef0123456789abcdef", "size": 10,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": "sha256:../../../../v2/ok/manifests/1", "size": 10,
         "platform": {"architecture": "arm64", "os": "linux"}}], "1")
    case("bad-child-digest")
    child = registry.add_image("loop", architecture="arm64")
    parent = registry.add_index("loop", [child], "1")
    registry.on("GET", r"/v2/loop/manifests/" + child["digest"],
                _serve(registry.manifests[("loop", parent["digest"])][1], OCI_INDEX))
    case("loop")
    return images


@pytest.fixture(scope="module")
def hostile_info():
    """One run of docker_manifest_info over every case; ``(registry, {case: image facts}, run, seconds)``."""
    with Hostile() as registry:
        images = _build(registry)
        names = list(images)
        started = time.monotonic()
        run = run_playbook(play(task("inspect", "docker_manifest_info", images=[images[n] for n in names],
                                     config=True, verify_children=True, timeout=TIMEOUT, retries=1,
                                     concurrency=4)))
        seconds = time.monotonic() - started
        assert run.rc == 0, run.output
        facts = dict(zip(names, run.result("inspect")["images"]))
        yield registry, facts, run, seconds


def _error(facts, case):
    error = facts[case].get("error")
    assert error, (case, facts[case])
    return error["code"], error["message"]


def test_a_good_image_beside_them_is_read(hostile_info):
    registry, facts, _run, _seconds = hostile_info
    assert facts["ok"]["exists"] and facts["ok"]["platforms"] == ["linux/amd64"] and not facts["ok"].get("error")
    assert registry.writes() == []


@pytest.mark.parametrize("case", ["big-manifest", "big-manifest-chunked", "endless", "index-100k"])
def test_a_manifest_over_4_mib_is_refused(hostile_info, case):
    code, message = _error(hostile_info[1], case)
    assert code == "SIZE_INVALID" and "4 MiB" in message and "manifest" in message, message


def test_a_config_over_8_mib_is_refused(hostile_info):
    code, message = _error(hostile_info[1], "big-config")
    assert code == "SIZE_INVALID" and "8 MiB" in message, message


def test_a_100_mib_error_body_is_cut_and_worded(hostile_info):
    code, message = _error(hostile_info[1], "big-error")
    assert "400" in message and len(message) < 1000, message


def test_a_body_that_stalls_byte_by_byte_ends_at_its_deadline(hostile_info):
    code, message = _error(hostile_info[1], "stall")
    assert code == "TIMEOUT" and "did not arrive within %g s" % TIMEOUT in message, message
    # the whole run (every case, concurrency 4) took far less than timeout x 4000 bytes
    assert hostile_info[3] < 60


@pytest.mark.parametrize("case, words", [
    ("deep-json", "deeper than"),
    ("duplicate-keys", "duplicate key"),
    ("invalid-utf8", "not UTF-8"),
])
def test_json_that_is_not_strict_is_refused(hostile_info, case, words):
    code, message = _error(hostile_info[1], case)
    assert code == "MANIFEST_INVALID" and words in message, message


def test_a_config_that_is_changed_after_hashing_is_refused(hostile_info):
    code, message = _error(hostile_info[1], "nan-config")
    assert code == "DIGEST_MISMATCH", message


def test_a_config_with_nan_is_refused(hostile_info):
    code, message = _error(hostile_info[1], "nan-config2")
    assert code == "MANIFEST_INVALID" and "NaN is not JSON" in message, message


def test_a_manifest_whose_bytes_do_not_match_the_digest_asked_for_is_refused(hostile_info):
    code, message = _error(hostile_info[1], "lying-get")
    assert code == "DIGEST_MISMATCH" and "refusing the content" in message, message


def test_sha512_digests_work(hostile_info):
    facts = hostile_info[1]["sha512"]
    assert not facts.get("error"), facts
    assert facts["digest"].startswith("sha512:") and facts["platforms"] == ["linux/amd64"]


def test_child_digests_of_unknown_or_malformed_algorithms_are_refused_and_never_requested(hostile_info):
    registry, facts, _run, _seconds = hostile_info
    code, message = _error(facts, "bad-child-digest")
    assert "md5" in message or "digest" in message, message
    assert not registry.seen(r"/v2/bad-child-digest/manifests/md5:.*")
    assert not [s for s in registry.log if ".." in s.path]


def test_a_child_that_points_back_at_its_parent_is_refused(hostile_info):
    code, message = _error(hostile_info[1], "loop")
    assert code == "DIGEST_MISMATCH", message


def test_a_head_that_reports_another_digest_than_the_one_asked_for_is_refused():
    with Hostile() as registry:
        wanted = registry.add_image("app")
        other = registry.add_image("other")
        registry.on("HEAD", r"/v2/app/manifests/.*", lambda h: h.answer(
            200, registry.manifests[("other", other["digest"])][1], {"Docker-Content-Digest": other["digest"]},
            OCI_MANIFEST))
        run = run_playbook(play(task("head", "docker_manifest_info", digest_only=True, timeout=TIMEOUT,
                                     images=["%s/app@%s" % (registry.host, wanted["digest"])])))
        facts = run.result("head")["images"][0]
        assert facts["error"]["code"] == "DIGEST_MISMATCH" and other["digest"] in facts["error"]["message"], facts


# ---------------------------------------------------------------------- copies
def test_a_copy_refuses_an_index_nested_1000_deep_and_writes_nothing():
    with Hostile() as registry:
        image = registry.add_image("deep")
        descriptor = image
        for _level in range(1000):
            descriptor = registry.add_index("deep", [descriptor])
        descriptor["platform"] = {"architecture": "arm64", "os": "linux"}
        registry.add_index("deep", [image, descriptor], "1")
        run = run_playbook(play(task("copy", "docker_manifest_create", ignore_errors=True,
                                     name="%s/copy/app:1" % registry.host, sources=["%s/deep:1" % registry.host],
                                     timeout=TIMEOUT)))
        result = run.result("copy")
        assert result.get("failed") and "nests image indexes more than 8 deep" in result["msg"], result
        assert registry.writes() == []


def test_a_copy_refuses_a_child_whose_bytes_do_not_match_its_digest_and_writes_no_index():
    with Hostile() as registry:
        good = registry.add_image("src", architecture="arm64")
        registry.add_index("src", [good], "1")
        other = registry.manifests[("src", good["digest"])][1] + b"\n"     # other bytes, same document
        registry.on("GET", r"/v2/src/manifests/" + good["digest"], _serve(other))
        run = run_playbook(play(task("copy", "docker_manifest_create", ignore_errors=True,
                                     name="%s/copy/app:1" % registry.host, sources=["%s/src:1" % registry.host],
                                     timeout=TIMEOUT)))
        result = run.result("copy")
        assert result.get("failed") and "not the %s that was asked for" % good["digest"] in result["msg"], result
        assert not [s for s in registry.writes() if s.method == "PUT" and "/manifests/" in s.path]


def test_sha512_images_copy_end_to_end():
    with Hostile() as registry:
        image = registry.add_image("src512", algorithm="sha512")
        registry.add_index("src512", [image], "1", algorithm="sha512")
        run = run_playbook(play(task("copy", "docker_manifest_create", name="%s/copy512/app:1" % registry.host,
                                     sources=["%s/src512:1" % registry.host], timeout=TIMEOUT)))
        assert run.rc == 0, run.output
        assert ("copy512/app", image["digest"]) in registry.manifests


# ---------------------------------------------------------------------- tokens, challenges, redirects
def test_a_token_realm_over_plain_http_is_refused_while_the_registry_is_https(tmp_path):
    tls = make_server_tls(tmp_path / "tls")
    with Hostile() as realm, Hostile(tls=tls, auth="bearer") as registry:
        registry._realm = realm.url + "/token"
        registry.add_image("app", "1")
        run = run_playbook(play(task("inspect", "docker_manifest_info", ignore_errors=True,
                                     images=["%s/app:1" % registry.host], ca_path=str(tls.ca_path),
                                     username="hostile", password="s3cret-hostile", fail_on_error=True,
                                     timeout=TIMEOUT)))
        result = run.result("inspect")
        assert result.get("failed") and "plain HTTP while the registry is reached over HTTPS" in result["msg"]
        assert realm.log == []          # nothing, not even an anonymous request, went to the realm
        assert "s3cret" not in run.output


@pytest.mark.parametrize("challenge", [
    'Bearer realm=',
    'Bearer realm="',
    'Bearer realm="file:///etc/passwd",service="x"',
    'Bearer realm="ftp://127.0.0.1/token"',
    'Bearer ,,,realm="http://x",,"service"=,',
    'Bearer realm="' + "a" * 60000 + '"',
    'Basic realm="a"b"c", Bearer',
    'Negotiate',
])
def test_odd_challenges_end_in_one_clear_error(challenge):
    with Hostile(auth="bearer", challenge=challenge) as registry:
        registry.add_image("app", "1")
        run = run_playbook(play(task("inspect", "docker_manifest_info", ignore_errors=True,
                                     images=["%s/app:1" % registry.host], fail_on_error=True, timeout=TIMEOUT,
                                     username="hostile", password="s3cret-hostile")))
        result = run.result("inspect")
        assert result.get("failed") and "Traceback" not in run.output, run.output
        assert "s3cret" not in run.output
        assert not [s for s in registry.log if s.path.startswith("/token")]


@pytest.mark.parametrize("answer, words", [
    (lambda h: h.stream_sized(200, 100 * MIB, zeros(100 * MIB)), "1 MiB"),
    (lambda h: h.answer(200, b'{"token": "a\\r\\nX-Injected: 1"}'), "without a token"),
    (lambda h: h.answer(200, b'{"token": "t", "token": "u"}'), "without a token"),
    (lambda h: h.answer(200, b"[" * 50000), "without a token"),
])
def test_token_answers_that_are_huge_or_malformed_end_in_one_clear_error(answer, words):
    with Hostile(auth="bearer") as registry:
        registry.add_image("app", "1")
        registry.on("GET", r"/token", answer)
        run = run_playbook(play(task("inspect", "docker_manifest_info", ignore_errors=True,
                                     images=["%s/app:1" % registry.host], fail_on_error=True, timeout=TIMEOUT)))
        result = run.result("inspect")
        assert result.get("failed") and words in result["msg"], result
        assert not [s for s in registry.log if s.headers.get("X-Injected")]


@pytest.mark.parametrize("location, words", [
    ("file:///etc/passwd", "'file' URL"),
    ("ftp://127.0.0.1/x", "'ftp' URL"),
    ("LOOP", "redirect"),
])
def test_redirects_to_other_schemes_or_in_loops_are_refused(location, words):
    with Hostile() as registry:
        registry.add_image("app", "1")
        target = location if location != "LOOP" else "/v2/app/manifests/1"
        registry.on("GET", r"/v2/app/manifests/1", lambda h: h.answer(302, b"", {"Location": target}))
        run = run_playbook(play(task("inspect", "docker_manifest_info", images=["%s/app:1" % registry.host],
                                     timeout=TIMEOUT)))
        facts = run.result("inspect")["images"][0]
        assert facts.get("error") and words in facts["error"]["message"], facts
        assert len(registry.seen(r"/v2/app/manifests/1")) <= 12


def test_a_redirect_from_https_to_plain_http_is_refused_and_the_http_host_sees_nothing(tmp_path):
    tls = make_server_tls(tmp_path / "tls")
    with Hostile() as other, Hostile(tls=tls, auth="basic") as registry:
        other.add_image("app", "1")
        registry.add_image("app", "1")
        registry.on("GET", r"/v2/app/manifests/1",
                    lambda h: h.answer(302, b"", {"Location": other.url + "/v2/app/manifests/1"})
                    if h.headers.get("Authorization") else False)
        run = run_playbook(play(task("inspect", "docker_manifest_info", images=["%s/app:1" % registry.host],
                                     ca_path=str(tls.ca_path), username="hostile", password="s3cret-hostile",
                                     timeout=TIMEOUT)))
        facts = run.result("inspect")["images"][0]
        assert facts.get("error") and "from HTTPS to plain HTTP" in facts["error"]["message"], facts
        assert other.log == []


# ---------------------------------------------------------------------- enumeration
def test_link_headers_and_names_from_enumeration_cannot_lead_anywhere():
    with Hostile() as other, Hostile() as registry:
        registry.add_image("app", "ok")
        names = ["ok", "../../etc/passwd", "a b", "$(touch /tmp/pwned)", "-rf", ".hidden", "x" * 200, "ok\n"]
        pages = {
            "app": (names, other.url + "/v2/app/tags/list?last=ok&n=1"),
            "loop": (["v1"], "/v2/loop/tags/list?n=1000"),
            "file": (["v1"], "file:///etc/passwd"),
        }
        for repository, (tags, link) in pages.items():
            registry.add_image(repository, "v1")
            registry.on("GET", r"/v2/%s/tags/list" % repository,
                        lambda h, tags=tags, link=link: h.answer(
                            200, json.dumps({"tags": tags}).encode(),
                            {"Link": '<%s>; rel="next"' % link} if "last=" not in h.path else {}))
        run = run_playbook(play(task("list", "docker_manifest_info", ignore_errors=True, timeout=TIMEOUT,
                                     repositories=["%s/%s" % (registry.host, r) for r in pages])))
        result = run.result("list")
        assert other.log == []
        text = json.dumps(result)
        for bad in names[1:]:
            assert json.dumps(bad)[1:-1] not in text.replace(json.dumps(registry.host)[1:-1], "")
        assert "page already read" in text, text

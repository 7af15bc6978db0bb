"""Shared module support: option checks, secret scrubbing, one failure path; bounded concurrency; media types."""
import threading

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils import _errors
from ansible_collections.archfleet.multiarch.plugins.module_utils._concurrency import parallel_map
from ansible_collections.archfleet.multiarch.plugins.module_utils._module import (
    OptionError,
    parse_references,
    run_registry_task,
    scrub,
    validate_registry_options,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    compute_digest,
    media_type_of,
    sha256_digest,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError


class Exited(Exception):
    def __init__(self, kind, result):
        super(Exited, self).__init__(kind)
        self.kind = kind
        self.result = result


class FakeModule:
    def __init__(self, **params):
        self.params = dict(username=None, password=None, docker_config=None, validate_certs=True, ca_path=None,
                           insecure_registries=[], timeout=30, retries=3, concurrency=8)
        self.params.update(params)

    def fail_json(self, **result):
        raise Exited("fail", result)

    def exit_json(self, **result):
        raise Exited("exit", result)


@pytest.mark.parametrize("params, message", [
    (dict(timeout=0), "timeout must be a positive number of seconds, got 0"),
    (dict(retries=21), "retries must be between 0 and 20, got 21"),
    (dict(concurrency=0), "concurrency must be between 1 and 64, got 0"),
    (dict(ca_path="/nonexistent/ca.pem"), "ca_path /nonexistent/ca.pem does not exist or is not a file"),
    (dict(insecure_registries=["http://r.example"]), "insecure_registries entry 'http://r.example' is not a "
                                                     "registry host"),
])
def test_registry_options_are_checked(params, message):
    with pytest.raises(OptionError, match=message):
        validate_registry_options(dict(FakeModule().params, **params))


def test_ca_path_must_hold_a_certificate(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate")
    with pytest.raises(OptionError, match="is not a PEM certificate file"):
        validate_registry_options(dict(FakeModule().params, ca_path=str(path)))


def test_parse_references_names_the_option_and_index():
    assert [r.canonical for r in parse_references(["app:1", "ghcr.io/a/b:2"], "images")] == [
        "docker.io/library/app:1", "ghcr.io/a/b:2"]
    with pytest.raises(OptionError, match=r"images\[1\]: invalid image reference"):
        parse_references(["app", "a b"], "images")


def test_an_option_error_from_errors_fails_the_task_with_its_sentence():
    # _enumerate and _publish.jobs raise _errors.OptionError; _module re-exports that very class.
    assert OptionError is _errors.OptionError and issubclass(OptionError, ValueError)

    def prepare(params):
        raise _errors.OptionError("indexes[0].name: invalid image reference")
    with pytest.raises(Exited) as info:
        run_registry_task(FakeModule(), prepare, lambda client, prepared: {})
    assert info.value.result == {"msg": "indexes[0].name: invalid image reference"}


def test_scrub_replaces_longest_secrets_first_and_ignores_tiny_ones():
    assert scrub("token abcdef and abc and x", ["abc", "abcdef", "x", None]) == "token ******** and ******** and x"


def test_run_registry_task_scrubs_secrets_and_reports_stats():
    module = FakeModule(username="ci", password="hunter22")

    def execute(client, prepared):
        raise RegistryError("the registry said hunter22 is wrong", code="UNAUTHORIZED")
    with pytest.raises(Exited) as info:
        run_registry_task(module, lambda params: None, execute)
    assert info.value.kind == "fail"
    assert info.value.result["msg"] == "the registry said ******** is wrong"
    assert info.value.result["error_code"] == "UNAUTHORIZED" and "registry_stats" in info.value.result


def test_run_registry_task_bad_options_and_unexpected_errors():
    with pytest.raises(Exited) as info:
        run_registry_task(FakeModule(retries=-1), lambda params: None, lambda client, prepared: {})
    assert info.value.result == {"msg": "retries must be between 0 and 20, got -1"}

    def broken(client, prepared):
        raise KeyError("hunter22")
    with pytest.raises(Exited) as info:
        run_registry_task(FakeModule(username="ci", password="hunter22"), lambda params: None, broken)
    assert info.value.result["msg"] == "unexpected error: '********'" and "hunter22" not in info.value.result[
        "exception"]
    with pytest.raises(Exited) as info:
        run_registry_task(FakeModule(), lambda params: "prepared", lambda client, prepared: {"value": prepared})
    assert info.value.kind == "exit" and info.value.result["value"] == "prepared"
    assert info.value.result["registry_stats"]["total_requests"] == 0


def test_parallel_map_keeps_order_bounds_threads_and_raises_the_first_error():
    running, peak, lock = [0], [0], threading.Lock()

    def work(n):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return n * n
        finally:
            with lock:
                running[0] -= 1
    assert parallel_map(work, range(20), 3) == [n * n for n in range(20)]
    assert peak[0] <= 3
    assert parallel_map(work, [4], 8) == [16]

    def fail(n):
        if n == 2:
            raise ValueError("item 2")
        return n
    with pytest.raises(ValueError, match="item 2"):
        parallel_map(fail, range(5), 2)


def test_media_helpers():
    assert sha256_digest(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert compute_digest(b"", "sha512:x").startswith("sha512:cf83e135")
    assert compute_digest(b"", "md5:x") is None
    assert media_type_of("application/json; charset=utf-8") == "application/json"
    assert media_type_of("") is None

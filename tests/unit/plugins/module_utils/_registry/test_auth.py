"""Auth challenges, docker config.json lookups and credential helpers."""
import base64
import json
import os
import stat

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import (
    CredentialError,
    DockerConfig,
    basic_auth_value,
    normalize_config_key,
    parse_www_authenticate,
    run_credential_helper,
)


@pytest.mark.parametrize("header, scheme, params", [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
     "bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                "scope": "repository:library/busybox:pull"}),
    ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
    ('bearer realm="http://127.0.0.1:1234/token", service="reg", error="insufficient_scope"', "bearer",
     {"realm": "http://127.0.0.1:1234/token", "service": "reg", "error": "insufficient_scope"}),
    ('Bearer realm=https://x/token,service=svc', "bearer", {"realm": "https://x/token", "service": "svc"}),
    ('Bearer realm="a\\"b"', "bearer", {"realm": 'a"b'}),
    ('Bearer scope="repository:a:pull,push",realm="r"', "bearer", {"scope": "repository:a:pull,push", "realm": "r"}),
    ("", None, {}),
    (None, None, {}),
])
def test_parse_www_authenticate(header, scheme, params):
    assert parse_www_authenticate(header) == (scheme, params)


@pytest.mark.parametrize("key, host", [
    ("https://index.docker.io/v1/", "docker.io"),
    ("index.docker.io", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
    ("docker.io", "docker.io"),
    ("http://127.0.0.1:5000", "127.0.0.1:5000"),
    ("https://ghcr.io/v2/", "ghcr.io"),
    ("ghcr.io", "ghcr.io"),
])
def test_normalize_config_key(key, host):
    assert normalize_config_key(key) == host


def write_config(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_auths_entry_base64(tmp_path):
    auth = base64.b64encode(b"alice:s3cr:et").decode()
    auths = {"https://index.docker.io/v1/": {"auth": auth}, "127.0.0.1:5000": {"auth": auth}}
    config = DockerConfig.load(write_config(tmp_path, {"auths": auths}))
    creds = config.credentials_for("docker.io")
    assert (creds.username, creds.password) == ("alice", "s3cr:et")
    assert config.credentials_for("127.0.0.1:5000").username == "alice"
    assert config.credentials_for("ghcr.io") is None
    assert "s3cr:et" not in repr(creds)
    assert auth in creds.secrets()


def test_identity_token(tmp_path):
    config = DockerConfig.load(write_config(tmp_path, {"auths": {"reg.io": {"username": "u", "identitytoken": "tok"}}}))
    creds = config.credentials_for("reg.io")
    assert creds.identity_token == "tok" and creds.password is None


def test_invalid_auth_string_does_not_leak(tmp_path):
    config = DockerConfig.load(write_config(tmp_path, {"auths": {"reg.io": {"auth": "bm90LWJhc2U2NCE-secret"}}}))
    with pytest.raises(CredentialError) as info:
        config.credentials_for("reg.io")
    assert "secret" not in str(info.value) and "not valid base64" in str(info.value)


def test_invalid_json_names_the_file_not_the_content(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"auths": {"reg.io": {"auth": "c2VjcmV0OnNlY3JldA=="}}')
    with pytest.raises(CredentialError) as info:
        DockerConfig.load(str(path))
    assert str(path) in str(info.value) and "not valid JSON" in str(info.value)
    assert "c2VjcmV0" not in str(info.value)


def test_missing_explicit_file(tmp_path):
    with pytest.raises(CredentialError, match="does not exist"):
        DockerConfig.load(str(tmp_path / "nope.json"), required=True)


def test_default_location_follows_docker_config_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    write_config(tmp_path, {"auths": {"reg.io": {"auth": basic_auth_value("bob", "pw")}}})
    assert DockerConfig.load().credentials_for("reg.io").username == "bob"


def make_helper(tmp_path, name, script):
    path = tmp_path / ("docker-credential-" + name)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_cred_helpers_win_over_auths(tmp_path, monkeypatch):
    make_helper(tmp_path, "fake", 'read url; echo "{\\"ServerURL\\":\\"$url\\",\\"Username\\":\\"helper\\",'
                                  '\\"Secret\\":\\"hs\\"}"\n')
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    config = DockerConfig.load(write_config(tmp_path, {
        "auths": {"reg.io": {"auth": basic_auth_value("file", "fp")}},
        "credHelpers": {"reg.io": "fake"},
    }))
    creds = config.credentials_for("reg.io")
    assert (creds.username, creds.password) == ("helper", "hs")


def test_creds_store_and_identity_token_helper(tmp_path, monkeypatch):
    make_helper(tmp_path, "store", 'read url; [ "$url" = "https://index.docker.io/v1/" ] || exit 3\n'
                                   'echo \'{"Username":"<token>","Secret":"refresh"}\'\n')
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    config = DockerConfig.load(write_config(tmp_path, {"credsStore": "store"}))
    creds = config.credentials_for("docker.io")
    assert creds.identity_token == "refresh" and creds.username is None


def test_helper_not_found_entry_is_none(tmp_path, monkeypatch):
    make_helper(tmp_path, "empty", 'echo "credentials not found in native keychain"; exit 1\n')
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    assert run_credential_helper("empty", "reg.io") is None


def test_helper_failure_hides_output(tmp_path, monkeypatch):
    make_helper(tmp_path, "broken", 'echo "leaked-secret"; exit 2\n')
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    with pytest.raises(CredentialError) as info:
        run_credential_helper("broken", "reg.io")
    assert "exited with status 2" in str(info.value) and "leaked-secret" not in str(info.value)


def test_helper_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CredentialError, match="docker-credential-absent is not installed"):
        run_credential_helper("absent", "reg.io")


def test_containers_auth_paths_follow_containers_auth_json_5():
    from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import (
        containers_auth_paths,
    )
    assert containers_auth_paths({"REGISTRY_AUTH_FILE": "/etc/ci/auth.json"}) == ["/etc/ci/auth.json"]
    assert containers_auth_paths({"XDG_RUNTIME_DIR": "/run/user/1000", "XDG_CONFIG_HOME": "/home/u/.config"},
                                 uid=1000) == ["/run/user/1000/containers/auth.json",
                                               "/home/u/.config/containers/auth.json"]
    assert containers_auth_paths({}, uid=0)[0] == "/run/containers/0/auth.json"

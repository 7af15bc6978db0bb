"""daemon.json for build_host: merge, type check, and comparison with docker info."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.filter.docker_daemon_json import docker_daemon_json
from ansible_collections.archfleet.multiarch.plugins.plugin_utils._daemon_json import (
    DaemonJsonError,
    merged,
    not_applied,
)

CURRENT = '{"labels": ["team=a"], "insecure-registries": ["10.9.9.9:5000"]}'


def test_merge_keeps_unmanaged_keys_and_replace_does_not():
    options = {"registry-mirrors": ["https://mirror.lan"], "insecure-registries": ["10.0.0.5:5000"]}
    assert merged(options, CURRENT) == {"labels": ["team=a"], "insecure-registries": ["10.0.0.5:5000"],
                                        "registry-mirrors": ["https://mirror.lan"]}
    assert merged(options, CURRENT, "replace") == options
    assert merged(options, "") == options and merged(options, "  \n") == options


@pytest.mark.parametrize("key, value, kind", [
    ("insecure-registries", "10.0.0.5:5000", "a list of strings"), ("registry-mirrors", [1], "a list of strings"),
    ("debug", "yes", "a boolean"), ("mtu", True, "an integer"), ("log-opts", [], "a dictionary"),
    ("data-root", 5, "a string"),
])
def test_wrong_types_are_named(key, value, kind):
    with pytest.raises(DaemonJsonError, match="'%s' must be %s for dockerd" % (key, kind)):
        merged({key: value})


def test_unknown_keys_pass_unchecked():
    assert merged({"some-new-option": {"x": 1}}) == {"some-new-option": {"x": 1}}


@pytest.mark.parametrize("text, words", [("{nope", "not valid JSON"), ("[1]", "holds list, not a JSON object")])
def test_a_broken_current_file_is_refused_in_merge_mode(text, words):
    with pytest.raises(DaemonJsonError, match=words):
        merged({"debug": True}, text)
    assert merged({"debug": True}, text, "replace") == {"debug": True}


def test_not_applied_compares_what_docker_info_shows():
    wanted = {"labels": ["b", "a"], "registry-mirrors": ["https://m.lan"], "insecure-registries": ["10.0.0.5:5000", "10.1.0.0/16"],
              "debug": True, "log-driver": "json-file"}
    info = {"Labels": ["a", "b"], "Debug": True, "RegistryConfig": {
        "Mirrors": ["https://m.lan/"], "InsecureRegistryCIDRs": ["127.0.0.0/8", "10.1.0.0/16"],
        "IndexConfigs": {"10.0.0.5:5000": {"Secure": False}}}}
    assert not_applied(wanted, info) == []
    stale = {"Labels": ["a"], "Debug": False, "RegistryConfig": {"Mirrors": [], "IndexConfigs": {}}}
    assert not_applied(wanted, stale) == ['labels are ["a"]', "registry-mirrors are []",
                                          "insecure-registries lack 10.0.0.5:5000, 10.1.0.0/16", "debug is false"]


def test_filter_wraps_errors_and_switches_on_applied():
    with pytest.raises(AnsibleFilterError, match="^docker_daemon_json: .*'debug' must be a boolean"):
        docker_daemon_json({"debug": "on"})
    with pytest.raises(AnsibleFilterError, match="mode 'patch' is not one of: merge, replace"):
        docker_daemon_json({}, mode="patch")
    assert docker_daemon_json({"debug": True}, applied={"Debug": False}) == ["debug is false"]
    assert docker_daemon_json({"debug": True}, current='{"labels": []}') == {"labels": [], "debug": True}

"""The transport's session reads proxy and CA-bundle settings from the environment as requests does, once per host."""

from __future__ import annotations

import pytest
import requests

from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.transport import Transport

URLS = ("https://registry.example/v2/", "https://registry.example/v2/team/app/manifests/1.0",
        "https://internal.example:5000/v2/", "http://127.0.0.1:5000/v2/", "https://blobs.example/some/blob")


@pytest.fixture
def environment(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example,127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")


@pytest.mark.parametrize("verify", [True, False, "/tmp/ca.pem"])
def test_settings_are_those_requests_would_use(environment, verify):
    session = Transport(lambda registry: None).session
    plain = requests.Session()
    for _attempt in range(2):  # the second time from the cache
        for url in URLS:
            for stream in (False, True):
                assert (session.merge_environment_settings(url, {}, stream, verify, None)
                        == plain.merge_environment_settings(url, {}, stream, verify, None)), url


def test_proxies_follow_no_proxy_and_callers_cannot_change_the_cache(environment):
    session = Transport(lambda registry: None).session
    first = session.merge_environment_settings("https://registry.example/v2/", {}, False, True, None)
    assert first["proxies"]["https"] == "http://proxy.example:3128"
    assert first["verify"] == "/etc/ssl/certs/ca-certificates.crt"
    first["proxies"]["https"] = "http://elsewhere.example"
    again = session.merge_environment_settings("https://registry.example/v2/", {}, False, True, None)
    assert again["proxies"]["https"] == "http://proxy.example:3128"
    bypassed = session.merge_environment_settings("https://internal.example:5000/v2/", {}, False, True, None)
    assert "https" not in bypassed["proxies"]


def test_explicit_proxies_are_merged_as_requests_does(environment):
    session = Transport(lambda registry: None).session
    explicit = {"https": "http://explicit.example:8080"}
    merged = session.merge_environment_settings("https://registry.example/v2/", dict(explicit), False, True, None)
    assert merged == requests.Session().merge_environment_settings("https://registry.example/v2/", dict(explicit),
                                                                   False, True, None)

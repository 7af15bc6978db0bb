"""The transport's shortcuts through requests (issue 18, CPU) give what requests' own path gives.

The session prepares a request without merging when there is nothing to merge, its cookie jar skips answers
without Set-Cookie, and its HTTPAdapter builds a Response without a cookie pass when the answer sets none
and keeps the connection pool per scheme, host and TLS settings. Each shortcut is compared here with
requests' own result; cookies, params and proxies still take requests' own path.
"""

from __future__ import annotations

import http.client
import io

import pytest
import requests
from urllib3 import HTTPResponse

from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.transport import Transport


class _Auth(requests.auth.AuthBase):
    def __call__(self, request):
        request.headers["Authorization"] = "Bearer t"
        request.register_hook("response", self.hook)
        return request

    def hook(self, response, **_kwargs):
        return response


def _prepared(session, **kwargs):
    return session.prepare_request(requests.Request(**kwargs))


def _same(ours, theirs):
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert dict(ours.headers) == dict(theirs.headers)
    assert list(ours.headers) == list(theirs.headers) or sorted(ours.headers) == sorted(theirs.headers)
    assert ours.body == theirs.body
    assert {event: [hook.__func__ for hook in hooks] for event, hooks in ours.hooks.items()} == \
        {event: [hook.__func__ for hook in hooks] for event, hooks in theirs.hooks.items()}
    assert list(ours._cookies) == list(theirs._cookies)


@pytest.mark.parametrize("kwargs", [
    dict(method="get", url="http://127.0.0.1:5000/v2/team/app/manifests/1.0", data={}, params={}),
    dict(method="HEAD", url="https://registry.example/v2/a/b/manifests/sha256:" + "0" * 64,
         headers={"Accept": "application/vnd.oci.image.index.v1+json"}, data={}, params={}),
    dict(method="PUT", url="https://registry.example/v2/a/manifests/1.0", data=b"{}",
         headers={"Content-Type": "application/json", "User-Agent": None}, params={}),
    dict(method="POST", url="https://auth.example/token", data={"grant_type": "refresh_token", "scope": "x y"},
         params={}),
    dict(method="GET", url="https://Registry.Example/v2/a%2Fb/tags/list?n=10&last=x y", data={}, params={}),
])
def test_prepare_request_is_requests_own(kwargs):
    session = Transport(lambda registry, strict=False: None).session
    plain = requests.Session()
    plain.headers.update(session.headers)
    ours = _prepared(session, auth=_Auth(), **kwargs)
    theirs = _prepared(plain, auth=_Auth(), **kwargs)
    _same(ours, theirs)


def test_cookies_and_params_take_requests_path():
    session = Transport(lambda registry, strict=False: None).session
    session.cookies.set("sticky", "1", domain="registry.example", path="/")
    prepared = _prepared(session, method="GET", url="https://registry.example/v2/", auth=_Auth(), params={"n": 1})
    assert prepared.headers["Cookie"] == "sticky=1"
    assert prepared.url == "https://registry.example/v2/?n=1"


def _raw(headers):
    return HTTPResponse(body=io.BytesIO(b"{}"), headers=headers, status=200, reason="OK", preload_content=False)


def test_answers_with_and_without_set_cookie():
    transport = Transport(lambda registry, strict=False: None)
    adapter = transport.adapter.inner
    request = _prepared(transport.session, method="GET", url="https://registry.example/v2/", auth=_Auth())
    plain = requests.adapters.HTTPAdapter()
    for headers in ({"Content-Type": "application/json; charset=utf-8"},
                    {"Content-Type": "application/json", "Set-Cookie": "sticky=1; Path=/"}):
        ours, theirs = adapter.build_response(request, _raw(headers)), plain.build_response(request, _raw(headers))
        assert (ours.status_code, ours.reason, ours.url, ours.encoding, dict(ours.headers), ours.request) == \
            (theirs.status_code, theirs.reason, theirs.url, theirs.encoding, dict(theirs.headers), theirs.request)
        assert ours.connection is adapter
        assert dict(ours.cookies) == dict(theirs.cookies)


def test_session_jar_keeps_cookies_that_are_set():
    jar = Transport(lambda registry, strict=False: None).session.cookies
    request = requests.Request("GET", "https://registry.example/v2/").prepare()
    for headers in ({"Content-Type": "application/json"}, {"Set-Cookie": "sticky=1; Path=/"}):
        message = http.client.HTTPMessage()
        for name, value in headers.items():
            message[name] = value
        requests.cookies.extract_cookies_to_jar(jar, request, type("Raw", (), {"_original_response": type(
            "Original", (), {"msg": message})()})())
    assert dict(jar) == {"sticky": "1"}


@pytest.mark.skipif(not hasattr(requests.adapters.HTTPAdapter, "get_connection_with_tls_context"),
                    reason="requests %s has no HTTPAdapter.get_connection_with_tls_context (2.32 added it): its "
                           "send() asks get_connection instead, and the pool shortcut is not used" % requests.__version__)
def test_connection_pool_kept_per_scheme_host_and_tls():
    transport = Transport(lambda registry, strict=False: None)
    adapter = transport.adapter.inner
    session = transport.session

    def pool(url, verify=True, cert=None, proxies=None):
        request = _prepared(session, method="GET", url=url, auth=_Auth())
        return adapter.get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)

    first = pool("https://registry.example/v2/a/manifests/1")
    assert pool("https://registry.example/v2/b/manifests/2") is first
    assert pool("https://registry.example/v2/b/manifests/2", verify=False) is not first
    assert pool("https://other.example/v2/") is not first
    assert pool("http://registry.example/v2/") is not first
    proxied = pool("https://registry.example/v2/", proxies={"https": "http://proxy.example:3128"})
    assert proxied is not first
    first.close()                           # a closed pool (urllib3 1.x closes the pools it evicts): looked up again
    adapter.poolmanager.clear()
    assert pool("https://registry.example/v2/a/manifests/1") is not first


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:5000/v2/team/app/manifests/1.0",
    "https://registry.example/v2/a/b-c/d_e/manifests/sha256:" + "a" * 64,
    "https://registry.example/v2/",
    "https://registry.example/v2/a/blobs/uploads/?digest=sha256:00",
    "https://Registry.Example/v2/A/manifests/1",
    "https://registry.example/v2/a/../b/manifests/1",
    "https://registry.example/v2/a/./manifests/1",
    "https://registry.example/v2/a b/manifests/1",
    "https://registry.example/v2/a%20b/manifests/1",
    "https://registry.example/v2/a/manifests/1#frag",
    "https://registry.example:443/v2/a/manifests/x!$&'()*+,;=:@~",
    "https://user:pw@registry.example/v2/",
    "https://[::1]:5000/v2/",
    "https://bücher.example/v2/",
])
def test_urls_are_prepared_as_requests_prepares_them(url):
    session = Transport(lambda registry, strict=False: None).session
    plain = requests.Session()
    assert _prepared(session, method="GET", url=url, auth=_Auth()).url == \
        _prepared(plain, method="GET", url=url, auth=_Auth()).url


@pytest.mark.parametrize("url", ["https://registry.example:05000/v2/", "https://registry.example:0/v2/",
                                 "https://registry.example:65535/v2/", "https://registry.example:99999/v2/",
                                 "https://.example/v2/", "https://registry.example./v2/"])
def test_odd_ports_and_hosts_are_prepared_or_refused_as_requests_does(url):
    session = Transport(lambda registry, strict=False: None).session
    plain = requests.Session()
    try:
        expected = _prepared(plain, method="GET", url=url, auth=_Auth()).url
    except requests.exceptions.RequestException as exc:
        with pytest.raises(type(exc)):
            _prepared(session, method="GET", url=url, auth=_Auth())
        return
    assert _prepared(session, method="GET", url=url, auth=_Auth()).url == expected


@pytest.mark.parametrize("url", ["https://registry.example/v2/a/manifests/1", "http://127.0.0.1:5000/v2/",
                                 "https://registry.example/v2/a/tags/list?n=10&last=b", "https://registry.example"])
@pytest.mark.parametrize("proxies", [{}, {"https": "http://proxy.example:3128", "http": "http://proxy.example:3128"}])
def test_request_url_is_requests_own(url, proxies):
    transport = Transport(lambda registry, strict=False: None)
    request = _prepared(transport.session, method="GET", url=url, auth=_Auth())
    assert transport.adapter.inner.request_url(request, proxies) == \
        requests.adapters.HTTPAdapter().request_url(request, proxies)


def test_timeout_is_the_one_requests_would_make():
    timeout = Transport(lambda registry, strict=False: None, timeout=12)._timeout
    assert (timeout.connect_timeout, timeout.read_timeout) == (12, 12)

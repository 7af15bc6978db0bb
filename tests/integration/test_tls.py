"""TLS as Docker does it, against a real docker-registry that requires client certificates (mutual TLS).

The registry runs on loopback, where plain HTTP is allowed as a fallback: a failed TLS handshake must
still never turn into a plain-HTTP attempt (it used to, and the error then spoke of "an HTTP request
to an HTTPS server").
"""
from __future__ import annotations

import shutil

import pytest

from harness.ansible_run import play, task
from harness.images import push_image
from harness import pki
from harness.registry import Registry


@pytest.fixture(scope="module")
def mtls_registry():
    with Registry(client_certs=True, auth="htpasswd") as registry:
        client = registry.client_tls
        push_image(registry.url, "tls/app", "1", auth=registry.auth_tuple, verify=str(registry.ca_path),
                   cert=(str(client.cert_path), str(client.key_path)))
        yield registry


def info(registry, title="inspect", **options):
    return task(title, "docker_manifest_info", ignore_errors=True, images=[f"{registry.host}/tls/app:1"],
                username=registry.username, password=registry.password, **options)


def test_client_certificates_from_options_and_aliases(playbook, mtls_registry):
    client = mtls_registry.client_tls
    run = playbook(play(
        info(mtls_registry, "options", ca_path=str(mtls_registry.ca_path), client_cert=str(client.cert_path),
             client_key=str(client.key_path)),
        info(mtls_registry, "aliases", ca_cert=str(mtls_registry.ca_path), tls_verify=True,
             client_cert=str(client.cert_path), client_key=str(client.key_path)),
        task("publish", "docker_manifest_create", name=f"{mtls_registry.host}/tls/app:index",
             sources=[f"{mtls_registry.host}/tls/app:1"], username=mtls_registry.username,
             password=mtls_registry.password, ca_path=str(mtls_registry.ca_path),
             client_cert=str(client.cert_path), client_key=str(client.key_path)),
    ))
    assert run.rc == 0, run.output
    for title in ("options", "aliases"):
        assert run.result(title)["images"][0]["exists"] is True
    assert run.result("publish")["platforms"] == ["linux/amd64"]


def test_docker_certs_dir_is_read_as_docker_reads_it(playbook, mtls_registry, tmp_path):
    host_dir = tmp_path / "certs.d" / mtls_registry.host
    host_dir.mkdir(parents=True)
    shutil.copyfile(mtls_registry.ca_path, host_dir / "ca.crt")
    shutil.copyfile(mtls_registry.client_tls.cert_path, host_dir / "client.cert")
    shutil.copyfile(mtls_registry.client_tls.key_path, host_dir / "client.key")
    run = playbook(play(info(mtls_registry, docker_certs_dir=str(tmp_path / "certs.d"))))
    assert run.rc == 0, run.output
    assert run.result("inspect")["images"][0]["exists"] is True


def test_tls_failures_say_what_failed_and_never_fall_back_to_http(playbook, mtls_registry, tmp_path):
    stranger = pki.make_client_tls(tmp_path / "stranger", "someone else")
    run = playbook(play(
        info(mtls_registry, "no client certificate", ca_path=str(mtls_registry.ca_path)),
        info(mtls_registry, "unknown client certificate", ca_path=str(mtls_registry.ca_path),
             client_cert=str(stranger.cert_path), client_key=str(stranger.key_path)),
        info(mtls_registry, "unknown server CA", client_cert=str(mtls_registry.client_tls.cert_path),
             client_key=str(mtls_registry.client_tls.key_path)),
        info(mtls_registry, "mismatched pair", ca_path=str(mtls_registry.ca_path),
             client_cert=str(mtls_registry.client_tls.cert_path), client_key=str(stranger.key_path)),
    ))
    messages = {title: run.result(title)["msg"] for title in
                ("no client certificate", "unknown client certificate", "unknown server CA", "mismatched pair")}
    # The server's alert, or (TLS 1.3, timing) the connection it closed in the handshake.
    assert messages["no client certificate"].startswith((
        f"registry {mtls_registry.host} requires a client certificate (mutual TLS) and none was given",
        f"registry {mtls_registry.host} closed the connection during the TLS handshake; it probably requires a "
        "client certificate"))
    assert "set client_cert and client_key" in messages["no client certificate"]
    assert messages["unknown client certificate"].startswith(
        f"registry {mtls_registry.host} rejected the client certificate {stranger.cert_path}")
    assert "is signed by an unknown CA" in messages["unknown server CA"]
    assert "do not belong together" in messages["mismatched pair"]
    for message in messages.values():
        assert "HTTP request" not in message and "http://" not in message
    assert "Client sent an HTTP request to an HTTPS server" not in mtls_registry.log_path.read_text()

# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every registry module shares: its options, their checks, the client, and one way to fail.

A registry module is ``run_registry_task(module, prepare, execute)``: ``prepare(params)`` checks the
options (OptionError), ``execute(client, prepared)`` does the work; errors become one ``fail_json``
with secrets scrubbed, and ``registry_stats`` is always in the result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import ssl
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

# OptionError lives in _errors (raising it needs no AnsibleModule); _module.OptionError is that same class.
from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError, PlanError
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import CredentialError, DockerConfig
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import InvalidReferenceError, parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.api import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    RegistryClient,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.discovery import DEFAULT_CERTS_DIR

REGISTRY_ARGUMENT_SPEC = dict(
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    docker_config=dict(type="path", aliases=["config_path", "auth_file"]),
    validate_certs=dict(type="bool", default=True, aliases=["tls_verify"]),
    ca_path=dict(type="path", aliases=["ca_cert"]),
    registry_credentials=dict(type="list", elements="dict", default=[], options=dict(
        registry=dict(type="str", required=True),
        username=dict(type="str", required=True),
        password=dict(type="str", required=True, no_log=True),
    )),
    client_cert=dict(type="path"),
    client_key=dict(type="path"),
    docker_certs_dir=dict(type="path", default=DEFAULT_CERTS_DIR),
    insecure_registries=dict(type="list", elements="str", default=[]),
    timeout=dict(type="float", default=30),
    retries=dict(type="int", default=3),
    concurrency=dict(type="int", default=16),
)
REGISTRY_REQUIRED_TOGETHER = [("username", "password"), ("client_cert", "client_key")]


def registry_argument_spec(**extra):
    spec = dict(REGISTRY_ARGUMENT_SPEC)
    spec.update(extra)
    return spec


def registry_module(options, **rules):
    """An AnsibleModule with the shared registry options plus ``options`` (an argument spec) and ``rules``
    (``mutually_exclusive``, ``required_one_of``, ``required_by`` between them); fails clearly without requests."""
    module = AnsibleModule(argument_spec=registry_argument_spec(**options),
                           required_together=REGISTRY_REQUIRED_TOGETHER, supports_check_mode=True, **rules)
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    return module


def validate_registry_options(params):
    """Check the shared options before any request is made. Raises OptionError."""
    if params.get("timeout") is not None and params["timeout"] <= 0:
        raise OptionError("timeout must be a positive number of seconds, got %r" % (params["timeout"],))
    if params.get("retries") is not None and not 0 <= params["retries"] <= 20:
        raise OptionError("retries must be between 0 and 20, got %r" % (params["retries"],))
    if params.get("concurrency") is not None and not 1 <= params["concurrency"] <= 64:
        raise OptionError("concurrency must be between 1 and 64, got %r" % (params["concurrency"],))
    ca_path = params.get("ca_path")
    if ca_path:
        if not os.path.isfile(ca_path):
            raise OptionError("ca_path %s does not exist or is not a file" % ca_path)
        try:
            with open(ca_path, "rb") as handle:
                head = handle.read(1024 * 1024)
        except (IOError, OSError) as exc:
            raise OptionError("ca_path %s cannot be read: %s" % (ca_path, exc.strerror or exc))
        if b"-----BEGIN CERTIFICATE-----" not in head:
            raise OptionError("ca_path %s is not a PEM certificate file (no 'BEGIN CERTIFICATE' block)" % ca_path)
        try:
            ssl.create_default_context(cafile=ca_path)
        except ssl.SSLError as exc:
            raise OptionError("ca_path %s holds no valid PEM certificate (%s)" % (ca_path, exc.reason or exc))
    _check_client_pair(params.get("client_cert"), params.get("client_key"))
    certs_dir = params.get("docker_certs_dir")
    if certs_dir and certs_dir != DEFAULT_CERTS_DIR and not os.path.isdir(certs_dir):
        raise OptionError("docker_certs_dir %s does not exist or is not a directory" % certs_dir)
    for index, entry in enumerate(params.get("registry_credentials") or []):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) and entry.get(key)
                                                  for key in ("registry", "username", "password")):
            raise OptionError("registry_credentials[%d] must be a dict with registry, username and password "
                              "strings" % index)
        registry = entry.get("registry") or ""
        if not registry or "/" in registry or " " in registry:
            raise OptionError("registry_credentials[%d].registry %r is not a registry host (expected host or "
                              "host:port, e.g. 'ghcr.io' or 'registry.local:5000')" % (index, registry))
    for entry in params.get("insecure_registries") or []:
        if not entry or "/" in entry or " " in entry:
            raise OptionError("insecure_registries entry %r is not a registry host (expected host or host:port, "
                              "e.g. 'registry.local:5000')" % (entry,))
    if params.get("docker_config"):
        try:
            DockerConfig.load(params["docker_config"], required=True)
        except CredentialError as exc:
            raise OptionError(str(exc))


def _check_client_pair(cert, key):
    """client_cert and client_key: readable PEM files that belong together. Raises OptionError."""
    if not cert:
        return
    for option, path, marker in (("client_cert", cert, b"-----BEGIN CERTIFICATE-----"),
                                 ("client_key", key, b"PRIVATE KEY-----")):
        if not os.path.isfile(path):
            raise OptionError("%s %s does not exist or is not a file" % (option, path))
        try:
            with open(path, "rb") as handle:
                head = handle.read(1024 * 1024)
        except (IOError, OSError) as exc:
            raise OptionError("%s %s cannot be read: %s" % (option, path, exc.strerror or exc))
        if marker not in head:
            what = "certificate" if option == "client_cert" else "private key"
            raise OptionError("%s %s is not a PEM %s" % (option, path, what))
    try:
        ssl.create_default_context().load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise OptionError("client_cert %s and client_key %s do not belong together (%s)"
                          % (cert, key, exc.reason or exc))


def parse_references(values, option):
    """Parse a list of reference strings; the first invalid one raises OptionError naming the option."""
    refs = []
    for index, value in enumerate(values):
        try:
            refs.append(parse_reference(value))
        except InvalidReferenceError as exc:
            raise OptionError("%s[%d]: %s" % (option, index, exc))
    return refs


def client_from_params(params, pool_size=10):
    return RegistryClient(
        username=params.get("username"),
        password=params.get("password"),
        docker_config=params.get("docker_config"),
        docker_config_required=bool(params.get("docker_config")),
        validate_certs=params.get("validate_certs", True),
        ca_path=params.get("ca_path"),
        registry_credentials=params.get("registry_credentials"),
        client_cert=params.get("client_cert"),
        client_key=params.get("client_key"),
        certs_dir=params.get("docker_certs_dir"),
        insecure_registries=params.get("insecure_registries"),
        timeout=params.get("timeout") or 30,
        retries=params.get("retries") if params.get("retries") is not None else 3,
        pool_size=pool_size,
        max_in_flight=params.get("concurrency"),
    )


def scrub(text, secrets):
    """Replace every secret in ``text`` before it is shown to anyone."""
    text = str(text)
    for secret in sorted(set(s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


def run_registry_task(module, prepare, execute, pool_size=None):
    """Check the options, run ``execute(client, prepare(params))`` and exit with its result dict.

    OptionError, RegistryError and PlanError fail the task with their sentence (and ``error_code``);
    anything else fails as "unexpected error" with the traceback. Every text is scrubbed of the
    client's secrets. ``registry_stats`` is added to the result and to failures after requests.
    """
    params = module.params
    try:
        validate_registry_options(params)
        prepared = prepare(params)
    except OptionError as exc:
        module.fail_json(msg=str(exc))
    client = client_from_params(params, pool_size=pool_size or params["concurrency"])
    try:
        result = execute(client, prepared)
    except (RegistryError, PlanError) as exc:
        module.fail_json(msg=scrub(exc, client.secrets()), error_code=getattr(exc, "code", None),
                         registry_stats=client.stats())
    except Exception as exc:  # anything unexpected still must not leak a secret
        module.fail_json(msg=scrub("unexpected error: %s" % exc, client.secrets()),
                         exception=scrub(traceback.format_exc(), client.secrets()))
    finally:
        client.close()
    result["registry_stats"] = client.stats()
    module.exit_json(**result)

# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Registry connection, authentication and TLS options shared by the registry modules."""

    DOCUMENTATION = r"""
options:
  username:
    description:
      - User name for the registry. Used for every registry the task talks to.
      - When not set, credentials come from the docker config file (O(docker_config)).
    type: str
  password:
    description:
      - Password or access token for O(username). Never shown in results, errors or logs.
    type: str
  docker_config:
    description:
      - Path of a docker C(config.json) to read credentials from (C(auths), C(credHelpers),
        C(credsStore) with C(docker-credential-<name>) helpers, C(identitytoken)).
      - Defaults to C($DOCKER_CONFIG/config.json), else C(~/.docker/config.json), on the host that runs the module.
      - A registry it has no credentials for is then looked up, in the same format, in the containers
        C(auth.json) of Podman, Buildah and skopeo (C($REGISTRY_AUTH_FILE) when set, else
        C($XDG_RUNTIME_DIR/containers/auth.json) and C(~/.config/containers/auth.json)).
      - The aliases are the names other collections give this file (C(config_path) in community.docker's
        registry login, C(auth_file) in containers.podman); a containers C(auth.json) may be given here too.
    type: path
    aliases: [config_path, auth_file]
  registry_credentials:
    description:
      - Credentials per registry, for tasks that talk to several registries (a copy from one registry to
        another). An entry for a registry wins over O(username)/O(password) and the config files.
      - Passwords are never shown in results, errors or logs.
    type: list
    elements: dict
    default: []
    suboptions:
      registry:
        description: Registry host, or host:port, as in image references (compared case-insensitively).
        type: str
        required: true
      username:
        description: User name for that registry.
        type: str
        required: true
      password:
        description: Password or access token for that registry.
        type: str
        required: true
  validate_certs:
    description:
      - Verify the registry's TLS certificate.
      - Registries listed in O(insecure_registries) are never verified.
    type: bool
    default: true
    aliases: [tls_verify]
  ca_path:
    description:
      - PEM file with the CA certificate(s) to verify registries with, instead of the system store
        (and instead of a C(ca.crt) in O(docker_certs_dir)).
    type: path
    aliases: [ca_cert]
  client_cert:
    description:
      - PEM client certificate to present to registries that require one (mutual TLS), with O(client_key).
      - When not set, a client pair in O(docker_certs_dir) for the registry is used, as Docker does.
    type: path
  client_key:
    description:
      - PEM private key of O(client_cert).
    type: path
  docker_certs_dir:
    description:
      - Docker's per-registry TLS directory, read as Docker reads it. C(<docker_certs_dir>/<host[:port]>/)
        may hold CA certificates (C(*.crt)) to verify that registry with, and client pairs
        (C(name.cert) with C(name.key)) to present to it.
      - O(ca_path), O(client_cert) and O(client_key), when set, take precedence.
      - Podman and skopeo use C(/etc/containers/certs.d) in the same layout.
    type: path
    default: /etc/docker/certs.d
  insecure_registries:
    description:
      - Registries (C(host) or C(host:port)) to reach without TLS verification, and over plain HTTP
        when they do not speak HTTPS, as Docker's C(insecure-registries) setting does.
      - Loopback registries (C(localhost), C(127.0.0.0/8), C([::1])) may always fall back to plain HTTP;
        their certificates are still verified when they do speak HTTPS.
    type: list
    elements: str
    default: []
  timeout:
    description:
      - Seconds to wait for the registry to connect or send data, per request.
    type: float
    default: 30
  retries:
    description:
      - How many times a request is retried after HTTP 429, 502, 503, 504 or a connection error,
        with exponential backoff; a C(Retry-After) header from the registry is honoured.
    type: int
    default: 3
  concurrency:
    description:
      - How many requests are in flight at once over the task's one HTTP session, whatever they belong
        to (references inspected, sources read, children copied, indexes published); work that waits
        for a free slot never leaves one idle.
      - Between 1 and 64. Each request is small (a manifest, a mount); 16 keeps a registry 20 ms away
        busy without queueing on it (see the performance notes of the collection).
    type: int
    default: 16
attributes:
  action_group:
    description: Use C(group/archfleet.multiarch.registry) in C(module_defaults) to set the registry options of
      this module once per play, block or role, together with the other registry modules of the collection.
    support: full
    membership:
      - archfleet.multiarch.registry
notes:
  - Requests go straight to the registry API (OCI distribution); no docker daemon or CLI is used.
  - A registry that speaks TLS is never retried over plain HTTP, whatever its TLS error; the error says
    what failed (unknown CA, name mismatch, client certificate required or rejected).
  - Docker Hub references (C(docker.io/...), C(busybox)) are served by C(registry-1.docker.io).
requirements:
  - requests
"""

# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker's daemon.json for the build_host role: merge, type check, and did dockerd apply it.

Controller-only (used by the ``docker_daemon_json`` filter). The types are those of dockerd's
``daemon.json`` reference; keys not listed here pass unchecked (newer dockerd options), and
``dockerd --validate`` checks them where the daemon has it (Docker 23 and later).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

_LIST_OF_STR = ("allow-nondistributable-artifacts", "authorization-plugins", "dns", "dns-opts", "dns-search",
                "exec-opts", "hosts", "insecure-registries", "labels", "node-generic-resources",
                "registry-mirrors", "storage-opts")
_BOOL = ("debug", "experimental", "icc", "init", "ip-forward", "ip-masq", "ip6tables", "iptables", "ipv6",
         "live-restore", "no-new-privileges", "raw-logs", "selinux-enabled", "tls", "tlsverify",
         "userland-proxy")
_STR = ("bip", "bridge", "cgroup-parent", "containerd", "data-root", "default-cgroupns-mode",
        "default-ipc-mode", "default-runtime", "default-shm-size", "exec-root", "fixed-cidr",
        "fixed-cidr-v6", "group", "log-driver", "log-level", "metrics-addr", "pidfile", "storage-driver",
        "tlscacert", "tlscert", "tlskey", "userns-remap")
_INT = ("max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts", "mtu",
        "shutdown-timeout")
_DICT = ("builder", "default-ulimits", "features", "log-opts", "runtimes")
MODES = ("merge", "replace")


class DaemonJsonError(ValueError):
    """One sentence naming the key, the value and what is allowed."""


def _kind(key):
    for keys, kind in ((_LIST_OF_STR, "a list of strings"), (_BOOL, "a boolean"), (_STR, "a string"),
                       (_INT, "an integer"), (_DICT, "a dictionary")):
        if key in keys:
            return kind
    return None


def _fits(value, kind):
    if kind == "a list of strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "a boolean":
        return isinstance(value, bool)
    if kind == "a string":
        return isinstance(value, str)
    if kind == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, dict)


def _json_type(value):
    for types, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                        (list, "a list"), (dict, "a dictionary")):
        if isinstance(value, types):
            return name
    return "null" if value is None else type(value).__name__


def check_types(options, source="build_host_docker_daemon_options"):
    for key in sorted(options):
        kind = _kind(key)
        if kind and not _fits(options[key], kind):
            raise DaemonJsonError(
                "%s: %r must be %s for dockerd, got %s %s; dockerd would refuse to start with it." % (
                    source, str(key), kind, _json_type(options[key]), json.dumps(options[key])))


def merged(options, current_text="", mode="merge"):
    """The daemon.json content to write: ``options`` over the current file (``merge``) or alone."""
    if mode not in MODES:
        raise DaemonJsonError("daemon.json mode %r is not one of: %s." % (mode, ", ".join(MODES)))
    if not isinstance(options, dict):
        raise DaemonJsonError("the daemon.json options must be a dictionary, got %s." % _json_type(options))
    check_types(options)
    current = {}
    if mode == "merge" and (current_text or "").strip():
        try:
            current = json.loads(current_text)
        except (ValueError, RecursionError) as exc:   # RecursionError: nested deeper than the scanner goes
            raise DaemonJsonError("The current daemon.json is not valid JSON (%s): fix it, or set "
                                  "build_host_docker_daemon_json_mode to replace to write the file whole." % exc)
        if not isinstance(current, dict):
            raise DaemonJsonError("The current daemon.json holds %s, not a JSON object: fix it, or set "
                                  "build_host_docker_daemon_json_mode to replace." % type(current).__name__)
    result = dict(current)
    result.update(options)
    return result


def _mirror(url):
    return url.rstrip("/")


def not_applied(wanted, info):
    """Sentences for the keys of ``wanted`` that ``docker info`` (a dict) shows another value for.

    Only keys docker info reports are compared: labels, registry-mirrors, insecure-registries,
    debug, live-restore.
    """
    registry = info.get("RegistryConfig") or {}
    problems = []
    if "labels" in wanted and sorted(info.get("Labels") or []) != sorted(wanted["labels"]):
        problems.append("labels are %s" % json.dumps(info.get("Labels") or []))
    if "registry-mirrors" in wanted and sorted(_mirror(m) for m in registry.get("Mirrors") or []) \
            != sorted(_mirror(m) for m in wanted["registry-mirrors"]):
        problems.append("registry-mirrors are %s" % json.dumps(registry.get("Mirrors") or []))
    if "insecure-registries" in wanted:
        indexes = registry.get("IndexConfigs") or {}
        cidrs = registry.get("InsecureRegistryCIDRs") or []
        missing = [r for r in wanted["insecure-registries"]
                   if r not in cidrs and (indexes.get(r) or {}).get("Secure", True)]
        if missing:
            problems.append("insecure-registries lack %s" % ", ".join(missing))
    for key, field in (("debug", "Debug"), ("live-restore", "LiveRestoreEnabled")):
        if key in wanted and field in info and bool(info[field]) != bool(wanted[key]):
            problems.append("%s is %s" % (key, json.dumps(info[field])))
    return problems

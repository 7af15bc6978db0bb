# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts for docker_manifest_info: many references read at once through the shared RegistryClient.

One manifest GET per reference (plus the image config of single-platform images, and of every
entry with ``config``); the shaping of documents into facts is pure (``_oci.manifest``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._concurrency import parallel_map
from ansible_collections.archfleet.multiarch.plugins.module_utils._enumerate import (
    Enumerator,
    parse_catalogs,
    parse_repositories,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._module import OptionError, parse_references
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    config_facts,
    index_facts,
    is_image_manifest,
    is_index,
    is_schema1,
    platform_from_config,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import (
    PlatformError,
    format_platform,
    platform_key,
    parse_platform,
    platform_matches,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError
from ansible_collections.archfleet.multiarch.plugins.module_utils._supply_chain import (
    SupplyChain,
    artifact_update,
    parse_referrers_option,
    parse_trust_options,
)


def parse_options(params):
    """``(image refs, repositories, catalogs)`` once every option checked; OptionError otherwise."""
    refs = parse_references(params["images"] or [], "images")
    for index, text in enumerate(params["require_platforms"]):
        try:
            parse_platform(text)
        except PlatformError as exc:
            raise OptionError("require_platforms[%d]: %s" % (index, exc))
    parse_referrers_option(params.get("referrers"))
    parse_trust_options(params)
    return refs, parse_repositories(params.get("repositories")), parse_catalogs(params.get("catalog"))


def inspect_task(client, prepared, params):
    """The docker_manifest_info result: ``images`` (given, then enumerated) and, when enumerated, ``repositories``."""
    refs, repositories, catalogs = prepared
    keys, policy = parse_trust_options(params)
    facts = ManifestFacts(client, fetch_config=params["config"], required_platforms=params["require_platforms"],
                          verify_children=params["verify_children"], fail_on_error=params["fail_on_error"],
                          digest_only=params["digest_only"],
                          referrers=params.get("referrers"), signature_keys=keys, certificate_policy=policy)
    result = {"changed": False}
    if keys:
        result["signature_keys"] = [key.fact() for key in keys]
    if policy is not None:
        result["certificate_policy"] = policy.fact()
    if repositories or catalogs:
        listed, result["repositories"] = Enumerator(client, params["concurrency"]).expand(repositories, catalogs)
        refs = list(refs) + listed
    result["images"] = facts.gather(refs, concurrency=params["concurrency"])
    return result


def _digest_facts(ref):
    """What ``digest_only`` returns: about 250 bytes of JSON per reference instead of about 2 KB."""
    return {"reference": ref.original if ref.original is not None else ref.canonical, "canonical": ref.canonical,
            "exists": False, "digest": None, "media_type": None, "size": None}


def _empty_facts(ref):
    return {
        "reference": ref.original if ref.original is not None else ref.canonical,
        "canonical": ref.canonical,
        "registry": ref.registry,
        "repository": ref.repository,
        "tag": ref.tag,
        "exists": False,
        "digest": None,
        "media_type": None,
        "size": None,
        "kind": "missing",
        "platforms": [],
        "manifests": [],
        "attestations": [],
        "annotations": {},
    }


# Errors about the task's access to a registry rather than about one image: they fail the images on that
# registry, and the task when they are all there is (ManifestFacts.gather). DENIED
# is not one: a registry that refuses one repository ("does not exist or no pull access", Docker Hub's
# 401 insufficient_scope, a 403) has refused that image only.
TASK_LEVEL_CODES = frozenset(("UNREACHABLE", "TLS", "CREDENTIALS", "UNAUTHORIZED", "TOOMANYREQUESTS"))


class ManifestFacts:
    """Inspect references: one manifest GET each, plus what ``fetch_config`` and ``verify_children`` ask for.

    A broken or unreadable image never fails the others: it gets an ``error`` fact (``code``,
    ``message``) and ``exists`` says what is known (true, false, or null when the registry could not
    tell). Failures of the task's access to a registry (TASK_LEVEL_CODES: no connection, TLS, credentials
    refused, rate limit) are errors of the images on that registry; they raise RegistryError only when no
    image could be read at all, and with ``fail_on_error`` any image error does.
    """

    def __init__(self, client, fetch_config=False, required_platforms=None, verify_children=False,
                 fail_on_error=False, digest_only=False, referrers=False, signature_keys=None,
                 certificate_policy=None):
        self.client = client
        # referrers: the module option (false, true or artifact types to keep; see _supply_chain);
        # signature_keys: the _signatures.PublicKey list signatures are verified with; certificate_policy:
        # the _sigstore.CertificatePolicy (identity, issuer, trusted root) certificates are checked against
        types = parse_referrers_option(referrers)
        self.supply_chain = (SupplyChain(client, types, signature_keys, certificate_policy) if types is not None
                             else None)
        self.digest_only = digest_only
        self.fetch_config = fetch_config
        self.verify_children = verify_children
        self.fail_on_error = fail_on_error
        # (text as given, normalised key) for each required platform
        self.required = [(text, platform_key(text)) for text in (required_platforms or [])]

    def gather(self, refs, concurrency=8):
        """Facts for every reference, in input order. Tokens are fetched per registry up front.

        A registry the task cannot use (TASK_LEVEL_CODES: no connection, TLS, credentials refused, rate
        limit) fails only the images on it, each with that sentence as its ``error``, so an audit across
        registries still reports the healthy ones. When no image at all could be read for such a reason,
        the task fails with the first sentence; with ``fail_on_error`` it fails at the first one.
        """
        by_registry = {}
        for ref in refs:
            by_registry.setdefault(ref.registry, set()).add(ref.repository)
        unusable = {}
        for registry, repositories in by_registry.items():
            try:
                self.client.authorize(registry, [(repo, ("pull",)) for repo in sorted(repositories)])
            except RegistryError as exc:
                if self.fail_on_error or exc.code not in TASK_LEVEL_CODES:
                    raise
                unusable[registry] = exc
        access_errors = []
        facts = parallel_map(lambda ref: self.inspect(ref, unusable.get(ref.registry), access_errors), refs,
                             concurrency)
        if refs and len(access_errors) == len(refs):
            raise access_errors[0]
        return facts

    def inspect(self, ref, unusable=None, access_errors=None):
        """The facts of one reference (a dict; see the module's RETURN).

        ``unusable``: the RegistryError that made ``ref``'s registry unusable, reported instead of a read;
        ``access_errors`` (a list) collects the task-level errors met, for :meth:`gather`.
        """
        facts = _digest_facts(ref) if self.digest_only else _empty_facts(ref)
        try:
            if unusable is not None:
                raise unusable
            self._inspect(ref, facts)
            if self.supply_chain is not None and not self.digest_only:
                self.supply_chain.add(ref, facts)
        except RegistryError as exc:
            if self.fail_on_error or (exc.code in TASK_LEVEL_CODES and access_errors is None):
                raise
            if exc.code in TASK_LEVEL_CODES:
                access_errors.append(exc)
            facts["error"] = {"code": exc.code or "UNKNOWN", "message": str(exc)}
            if facts["exists"] is False:
                facts["exists"] = None
                if "kind" in facts:
                    facts["kind"] = "unknown"
        if facts.get("error") and self.fail_on_error:
            raise RegistryError(facts["error"]["message"], code=facts["error"]["code"])
        self._add_missing(facts)
        return facts

    def _inspect(self, ref, facts):
        if self.digest_only:
            # One HEAD (the client GETs only when the registry answers without a digest or a length).
            head = self.client.head_manifest(ref)
            if head is not None:
                facts.update({"exists": True, "digest": head.digest, "media_type": head.media_type,
                              "size": head.size})
            return
        manifest = self.client.get_manifest(ref)
        if manifest is None:
            return
        document = manifest.json()
        facts.update({
            "exists": True,
            "digest": manifest.digest,
            "media_type": manifest.media_type,
            "size": manifest.size,
        })
        if is_schema1(manifest.media_type, document):
            facts["kind"] = "schema1"
            facts["error"] = {"code": "UNSUPPORTED", "message": (
                "%s is a Docker schema 1 manifest (%s): deprecated, unsigned digests, and no index can list it; "
                "push the image again with a current client" % (ref.canonical, manifest.media_type))}
        elif is_index(manifest.media_type, document):
            facts["kind"] = "index"
            facts.update(index_facts(document))
            facts.update(artifact_update(manifest.media_type, document))
            self._children(ref, facts)
        elif artifact_update(manifest.media_type, document):
            facts.update(artifact_update(manifest.media_type, document))
            facts["annotations"] = dict(document.get("annotations") or {})
        elif is_image_manifest(manifest.media_type, document):
            facts["kind"] = "image"
            config, details = self._config(ref, document)
            platform = platform_from_config(config)
            entry = {
                "kind": "image",
                "digest": manifest.digest,
                "size": manifest.size,
                "media_type": manifest.media_type,
                "platform": platform.as_dict(),
                "platform_string": format_platform(platform),
                "annotations": dict(document.get("annotations") or {}),
            }
            if self.fetch_config:
                entry["config"] = details
                facts["config"] = details
            facts["manifests"] = [entry]
            facts["platforms"] = [entry["platform_string"]] if platform.get("architecture") else []
            facts["annotations"] = dict(document.get("annotations") or {})
        else:
            facts["kind"] = "unknown"

    def _children(self, ref, facts):
        """With ``config`` or ``verify_children``: read or HEAD each child; list those that are gone."""
        if not (self.fetch_config or self.verify_children):
            return
        missing, failed = [], []
        for entry in facts["manifests"] + facts["attestations"]:
            child = ref.with_digest(entry["digest"])
            try:
                if self.fetch_config and entry.get("kind") == "image" and is_image_manifest(entry["media_type"]):
                    entry["config"] = self._config(child)[1]
                elif self.client.head_manifest(child, what="checking child") is None:
                    raise _missing_child(child)
            except RegistryError as exc:
                if exc.code == "MANIFEST_UNKNOWN":
                    missing.append(entry["digest"])
                    entry["missing"] = True
                else:
                    failed.append(exc)
                entry["error"] = {"code": exc.code or "UNKNOWN", "message": str(exc)}
        facts["missing_children"] = missing
        if missing:
            facts["error"] = {"code": "MANIFEST_UNKNOWN", "message": (
                "%s lists %d child manifest(s) missing from the registry: %s"
                % (ref.canonical, len(missing), ", ".join(missing)))}
        elif failed:
            facts["error"] = {"code": failed[0].code or "UNKNOWN", "message": str(failed[0])}

    def _config(self, ref, document=None):
        """(config JSON, config facts) of an image manifest; reads the manifest first if not given."""
        if document is None:
            child = self.client.get_manifest(ref, what="reading child manifest")
            if child is None:
                raise _missing_child(ref)
            document = child.json()
        config = self.client.get_image_config(ref, document)
        return config, config_facts(config, document)

    def _add_missing(self, facts):
        if not self.required or self.digest_only:
            return
        if facts["kind"] == "artifact":     # platforms do not apply to an artifact
            facts["missing_platforms"] = []
            return
        present = [platform_key(entry["platform"]) for entry in facts["manifests"]
                   if entry.get("platform") and not entry.get("missing") and entry.get("kind") != "artifact"]
        facts["missing_platforms"] = [text for text, key in self.required
                                      if not any(platform_matches(key, have) for have in present)]


def _missing_child(ref):
    return RegistryError("index entry %s is listed but its manifest is missing from the registry" % ref.canonical,
                         code="MANIFEST_UNKNOWN")

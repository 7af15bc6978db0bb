# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: image_digest
short_description: The digest an image reference points at, for pinning images by digest
version_added: 0.1.0
description:
  - Reads the manifest digest (V(sha256:...)) of each image reference from its registry with one manifest
    C(HEAD) request; no manifest is downloaded, so on registries that count pulls (Docker Hub) a lookup
    costs none. A registry that answers C(HEAD) without a digest or length gets a C(GET) for that reference.
  - For a multi-platform image this is the digest of its index (manifest list), which is what
    C(image@digest) pins; use M(archfleet.multiarch.docker_manifest_info) for per-platform digests.
  - One term gives one digest. Several terms give one digest each, in order; use C(query) (or
    C(lookup) with C(wantlist=true)) to get them as a list, as C(lookup) joins several results with commas.
  - An image that does not exist, or that the registry will not show (it says "does not exist or no pull
    access", as Docker Hub answers a mistyped repository), fails the lookup with a message naming it,
    unless O(default) is set. A registry that answers C(HEAD) with 404 gets one C(GET) before the image is
    called missing. Any other registry error (credentials refused, unreachable registry, a digest that does not match)
    always fails, with one sentence naming the reference; passwords and tokens never appear in it.
  - Runs on the controller (lookups always do), in the Python that runs C(ansible-playbook), which needs
    the library C(requests). Options are keyword arguments of the lookup; C(module_defaults) do not apply
    to lookups.
author:
  - archfleet maintainers (@archfleet)
options:
  _terms:
    description:
      - Image references, as Docker writes them (V(registry.example.com/team/app:1.4), V(busybox),
        V(app@sha256:...)). A list given as one term is flattened.
    type: list
    elements: str
    required: true
  default:
    description:
      - Returned for an image (tag or repository) that does not exist or that the registry refuses to
        show ("does not exist or no pull access"), instead of failing.
      - Other errors (credentials refused, unreachable registry) still fail the lookup.
    type: str
  output:
    description:
      - V(digest) returns the digest (V(sha256:...)).
      - V(reference) returns the image pinned by its digest, V(registry.example.com/team/app:1.4@sha256:...)
        (the full name as Docker resolves it, tag kept for the reader), ready for the C(image) field of a container.
    type: str
    choices: [digest, reference]
    default: digest
extends_documentation_fragment:
  - archfleet.multiarch.registry
notes:
  - Pass O(password) from a vaulted variable or an environment lookup, never as clear text in the template.
    The lookup never shows it, in results, errors or C(-vvv) output.
seealso:
  - module: archfleet.multiarch.docker_manifest_info
"""

EXAMPLES = r"""
- name: Pin the release image by digest
  ansible.builtin.set_fact:
    app_digest: "{{ lookup('archfleet.multiarch.image_digest', 'registry.example.com/team/app:1.4') }}"

- name: The image pinned, ready for a container definition
  ansible.builtin.debug:
    msg: "{{ lookup('archfleet.multiarch.image_digest', 'registry.example.com/team/app:1.4', output='reference') }}"

- name: Several images at once, as a list
  ansible.builtin.set_fact:
    pinned: "{{ query('archfleet.multiarch.image_digest', 'registry.example.com/team/app:1.4',
                      'registry.example.com/team/worker:1.4') }}"

- name: A private registry with a self-signed certificate; a missing image gives an empty string
  ansible.builtin.debug:
    msg: >-
      {{ lookup('archfleet.multiarch.image_digest', 'registry.lan:5000/team/app:next',
                username='ci', password=registry_password, ca_path='/etc/ssl/registry-ca.pem', default='') }}
"""

RETURN = r"""
_raw:
  description:
    - One entry per term, in order, the digest of the manifest or index the reference points at
      (V(sha256:) and 64 hex digits), or with O(output=reference) the reference pinned by it, or O(default)
      for an image that does not exist.
  type: list
  elements: str
  sample: ["sha256:6e8b5ed1d7bd5e0f6cb4e2fa1b0c4eb2b2f3c0a9dbe5e3b3a0c4a2b6d1f7e8a9"]
"""

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.archfleet.multiarch.plugins.module_utils._digests import head_digests
from ansible_collections.archfleet.multiarch.plugins.module_utils._module import (
    HAS_REQUESTS,
    REGISTRY_ARGUMENT_SPEC,
    REGISTRY_REQUIRED_TOGETHER,
    OptionError,
    client_from_params,
    parse_references,
    scrub,
    validate_registry_options,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError

display = Display()


def _flatten(terms):
    """Terms as given, with a list given as one term flattened (one level)."""
    flat = []
    for term in terms:
        flat.extend(term if isinstance(term, (list, tuple)) else [term])
    return flat


OPTIONS = frozenset(REGISTRY_ARGUMENT_SPEC) | frozenset(("default", "output"))


def _check_keywords(kwargs):
    """Refuse what Ansible's option handling lets through: unknown keywords (a typo would be ignored) and
    a validate_certs that is no boolean (it would silently mean false)."""
    unknown = sorted(set(kwargs) - OPTIONS)
    if unknown:
        raise AnsibleLookupError("image_digest: unsupported option(s) %s; supported: %s"
                                 % (", ".join(unknown), ", ".join(sorted(OPTIONS))))
    if "validate_certs" in kwargs:
        try:
            boolean(kwargs["validate_certs"], strict=True)
        except TypeError:
            raise AnsibleLookupError("image_digest: validate_certs must be a boolean, got %r" % (kwargs["validate_certs"],))


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        _check_keywords(kwargs)
        self.set_options(var_options=variables, direct=kwargs)
        if not HAS_REQUESTS:
            raise AnsibleLookupError("image_digest: needs the Python library 'requests' on the controller "
                                     "(pip install requests)")
        params = dict((name, self.get_option(name)) for name in REGISTRY_ARGUMENT_SPEC)
        secrets = [params["password"]] if params.get("password") else []
        terms = _flatten(terms)
        try:
            for together in REGISTRY_REQUIRED_TOGETHER:
                if any(params.get(name) for name in together) and not all(params.get(name) for name in together):
                    raise OptionError("parameters are required together: %s" % ", ".join(together))
            if not terms:
                raise OptionError("no image reference given")
            validate_registry_options(params)
            refs = parse_references([to_native(term) for term in terms], "terms")
        except OptionError as exc:
            raise AnsibleLookupError("image_digest: %s" % scrub(exc, secrets))
        client = client_from_params(params, pool_size=params["concurrency"])
        try:
            found = head_digests(client, refs, concurrency=params["concurrency"])
            display.vvv("image_digest: %d reference(s), requests: %s" % (len(refs), scrub(client.stats(), client.secrets())))
        except RegistryError as exc:
            raise AnsibleLookupError("image_digest: %s" % scrub(exc, client.secrets() + secrets))
        except Exception as exc:  # anything unexpected still must not leak a secret
            raise AnsibleLookupError("image_digest: unexpected error: %s" % scrub(exc, client.secrets() + secrets))
        finally:
            client.close()
        return [self._value(ref, response) for ref, response in zip(refs, found)]

    def _value(self, ref, response):
        if isinstance(response, str):   # why there is no manifest: missing, or no pull access
            default = self.get_option("default")
            if default is None:
                raise AnsibleLookupError("image_digest: %s; set default to return a value instead" % response)
            return default
        if self.get_option("output") == "reference":
            return "%s%s@%s" % (ref.name, ":" + ref.tag if ref.tag else "", response.digest)
        return response.digest

# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dict forms of list options, checked by Ansible's own argument-spec validator (no I/O).

``sources`` (docker_manifest_create), ``repositories`` and ``catalog`` (docker_manifest_info) take, per
item, a short string or a dict. Their element type is ``raw``, so ``AnsibleModule`` cannot check the dict
form; :func:`check_dict_form` checks each item against the same kind of argument spec (``options=``,
``mutually_exclusive``, ...) that the modules declare for ``indexes``, so the keys allowed are declared
once and the sentences are Ansible's (``Unsupported parameters: sources[0].arch. Supported parameters
include: ...``). ``ansible.module_utils.common.arg_spec`` loads no ``AnsibleModule``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError


def check_dict_form(value, where, spec, short_key, short_form, **rules):
    """The item ``value`` of a list option as a dict of ``spec``, defaults filled in.

    ``value``: a string (taken as ``{short_key: value}``) or a dict; ``where``: its option path
    (``indexes[1].sources[0]``), used in every message; ``spec``: an argument spec (``dict(type=...)``
    per key); ``short_form``: what the string form is, for the message about anything else; ``rules``:
    ``mutually_exclusive``, ``required_one_of``, ``required_by``, ... as ``AnsibleModule`` takes them.
    Raises OptionError naming ``where``, the value (an unknown key, a missing one, a type) and what is
    allowed.
    """
    if isinstance(value, str):
        value = {short_key: value}
    if not isinstance(value, dict):
        raise OptionError("%s must be %s or a dict with %s; got %s"
                          % (where, short_form, ", ".join(spec), type(value).__name__))
    # A key set to null is a key not given (as a task's "omit" would leave it), as before this check existed.
    value = dict((key, item) for key, item in value.items() if item is not None)
    result = ArgumentSpecValidator({where: dict(type="dict", options=spec, **rules)}).validate({where: value})
    if result.error_messages:
        raise OptionError("; ".join(("Unsupported parameters: %s" % error) if isinstance(error, UnsupportedError)
                                    else str(error) for error in result.errors.errors))
    return result.validated_parameters[where]

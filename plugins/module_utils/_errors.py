# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The task layer's option error, in a module of its own so that raising it needs no AnsibleModule.

``_module`` imports it (``_module.OptionError`` is this class) and turns it into the task's one
``fail_json``; ``_enumerate`` and ``_publish.jobs`` import it from here and so load nothing of
``ansible.module_utils.basic``. Keep this file free of imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class OptionError(ValueError):
    """An option value is invalid; the message names the option, the value and what is allowed."""

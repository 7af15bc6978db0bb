# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The errors a task reports as its own sentence, in a module of their own that imports nothing.

``OptionError`` (a bad option value) and ``PlanError`` (sources that cannot make a valid index).
``_module`` turns both into the task's one ``fail_json``; ``_enumerate`` and ``_publish.jobs`` raise
OptionError without loading ``ansible.module_utils.basic``, and ``_oci.index`` raises PlanError (and
re-exports it) without ``_module`` having to load index assembly. Keep this file free of imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class OptionError(ValueError):
    """An option value is invalid; the message names the option, the value and what is allowed."""


class PlanError(ValueError):
    """The sources cannot make a valid index; the message names the sources involved."""

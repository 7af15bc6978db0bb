# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot-time side of qemu_binfmt: ``/etc/binfmt.d`` files, masks, and what registers at boot.

systemd-binfmt reads ``/etc/binfmt.d``, ``/run/binfmt.d``, ``/usr/local/lib/binfmt.d`` and
``/usr/lib/binfmt.d``; a file in ``/etc`` overrides a same-named file in the others, and a
symlink to ``/dev/null`` masks it (``binfmt.d(5)``). binfmt-support's ``update-binfmts`` keeps
its own list in ``/var/lib/binfmts`` and registers it at boot too; that list cannot be masked
from here, only reported.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

MASK_TARGET = "/dev/null"
# Directories systemd-binfmt reads after /etc (which overrides them).
VENDOR_DIRS = ("/run/binfmt.d", "/usr/local/lib/binfmt.d", "/usr/lib/binfmt.d")
BINFMT_SUPPORT_DIR = "/var/lib/binfmts"


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


class BootConfig(object):
    """Reads and writes ``<conf_dir>/<name>.conf``; every write is recorded as a diff."""

    def __init__(self, module, conf_dir, vendor_dirs=VENDOR_DIRS, binfmt_support_dir=BINFMT_SUPPORT_DIR):
        self.module = module
        self.conf_dir = conf_dir
        self.vendor_dirs = vendor_dirs
        self.binfmt_support_dir = binfmt_support_dir

    def path(self, name):
        return os.path.join(self.conf_dir, name + ".conf")

    def is_mask(self, name):
        path = self.path(name)
        return os.path.islink(path) and os.readlink(path) == MASK_TARGET

    def current(self, name):
        """Our file's content, ``"-> /dev/null"`` for a mask, or None."""
        if self.is_mask(name):
            return "-> " + MASK_TARGET
        return read_text(self.path(name))

    def vendor_files(self, name):
        """Files outside /etc that register ``name`` at boot (systemd-binfmt and binfmt-support)."""
        found = [os.path.join(d, name + ".conf") for d in self.vendor_dirs
                 if os.path.exists(os.path.join(d, name + ".conf"))]
        if os.path.exists(os.path.join(self.binfmt_support_dir, name)):
            found.append(os.path.join(self.binfmt_support_dir, name))
        return found

    def unmaskable(self, name):
        """Boot sources a mask in /etc/binfmt.d does not stop (binfmt-support's list)."""
        return [p for p in self.vendor_files(name) if p.startswith(self.binfmt_support_dir + os.sep)]

    def write(self, name, content):
        """Write the file (replacing a mask); returns False when it already had this content."""
        path = self.path(name)
        if not self.is_mask(name) and read_text(path) == content:
            return False
        if not self.module.check_mode:
            if not os.path.isdir(self.conf_dir):
                os.makedirs(self.conf_dir, 0o755)
            fd, tmp = tempfile.mkstemp(dir=self.conf_dir, prefix="." + name)
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            os.chmod(tmp, 0o644)
            if os.path.islink(path):
                os.unlink(path)
            self.module.atomic_move(tmp, path)
        return True

    def mask(self, name):
        """Replace the file by a symlink to /dev/null; returns False when it is one already."""
        if self.is_mask(name):
            return False
        if not self.module.check_mode:
            path = self.path(name)
            if not os.path.isdir(self.conf_dir):
                os.makedirs(self.conf_dir, 0o755)
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(MASK_TARGET, path)
        return True

    def remove(self, name):
        """Remove the file or mask; returns False when there was none."""
        path = self.path(name)
        if not os.path.lexists(path):
            return False
        if not self.module.check_mode:
            os.unlink(path)
        return True

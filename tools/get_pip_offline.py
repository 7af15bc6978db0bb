"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test creates each sanity venv without pip and downloads get-pip.py from
ci-files.testing.ansible.com to bootstrap it; that host is unreachable here (only PyPI is).
ansible-test documents saving the script to ~/.ansible/test/cache/get_pip_<version>.py by hand;
tools/sanity.sh saves this file there instead. Like get-pip.py it takes pip-install arguments:
it installs the pip wheel bundled with CPython (ensurepip), then lets that pip install exactly
what ansible-test asked for (pinned pip and friends) from PyPI.
"""
import ensurepip
import os
import subprocess
import sys

# get-pip.py's own options; pip itself does not know them.
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

# ensurepip points PIP_CONFIG_FILE at /dev/null in this process; the real install must see the
# machine's pip configuration (index, certificates), so it gets the environment from before.
environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True, default_pip=True)
arguments = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + arguments, env=environment))

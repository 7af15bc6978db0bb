#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of the collection at ansible_collections/archfleet/multiarch
# (ansible-test needs that layout). Only files git knows (tracked or new, not ignored) are copied,
# so build output and virtualenvs are not scanned. ansible-test runs from its own venv
# (build/sanity-venv, made by `make sanity`) and installs each test's pinned tools itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SANITY_VENV:-$root/build/sanity-venv}"
work="$(mktemp -d /tmp/af-sanity.XXXXXX)"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/archfleet/multiarch"
mkdir -p "$dest"
cd "$root"
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$dest"

# ansible-test bootstraps pip in its venvs with get-pip.py from ci-files.testing.ansible.com, which
# this network cannot reach; it documents caching the script by hand. Cache our offline stand-in.
pip_version="$("$venv/bin/python" - <<'PY'
import pathlib, re, ansible_test
source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text()).group(1))
PY
)"
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  cp "$root/tools/get_pip_offline.py" "$cache"
fi

cd "$dest"
# ansible-test lists files through git when there is a repository: give it one.
git init -q && git add -A && git -c user.email=ci@localhost -c user.name=ci commit -qm sanity
PATH="$venv/bin:$PATH" ansible-test sanity --requirements --python 3.11 --color no "$@"

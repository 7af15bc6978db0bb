#!/usr/bin/env bash
# Pulp (pulpcore + pulp-container), a test partner only: the registry inside Red Hat Satellite and
# Private Automation Hub, run by tests/integration/harness/pulp.py. Builds a virtualenv for it once,
# outside the clone, and prints its path.
#
#   tools/pulp_venv.sh            build the venv if missing, print its path (a second run builds nothing)
#   tools/pulp_venv.sh --check    print the path if the venv is built, else exit 1 (builds nothing)
#
# Cache: ${ARCHFLEET_CACHE:-/var/cache/archfleet}/pulp/<recipe hash>/; the hash covers the pins below,
# the constraints file next to this script (every transitive package, pinned), this script's text and
# the Python version, so changing any of them builds a new venv and an unchanged recipe builds nothing.
# A venv records its own path (script shebangs), so it is built in place: under a lock, with a stamp
# written last; a directory without the stamp is a failed build and is removed before building again.
# Needs: python3 with venv (Debian's python3-venv), >= 3.11 (pulpcore's Requires-Python).
set -euo pipefail

CACHE=${ARCHFLEET_CACHE:-/var/cache/archfleet}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
CONSTRAINTS="$HERE/pulp_constraints.txt"

# Top-level requirements, every one pinned (pulp-container 2.30.0 requires pulpcore>=3.118,<3.130).
PINS='pulpcore==3.123.1
pulp-container==2.30.0'

if ! pyver=$("$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11); print(sys.version.split()[0])' 2>/dev/null); then
  echo "pulp_venv.sh: $PYTHON is missing or older than 3.11 (pulpcore 3.123 requires Python >= 3.11)" >&2
  exit 3
fi
hash=$( { printf '%s\n' "$PINS" "python $pyver"; cat "$CONSTRAINTS" "$0"; } | sha256sum | cut -c1-12)
out="$CACHE/pulp/$hash"

if [ -f "$out/.stamp" ]; then
  printf '%s\n' "$out"
  exit 0
fi
if [ "${1:-}" = --check ]; then
  echo "pulp_venv.sh: the Pulp venv is not built ($out); run tools/pulp_venv.sh" >&2
  exit 1
fi

mkdir -p "$CACHE/pulp"
exec 9>"$CACHE/pulp/.lock"
flock 9
if [ ! -f "$out/.stamp" ]; then
  rm -rf "$out"
  echo "pulp_venv.sh: building the Pulp venv ($(tr '\n' ' ' <<<"$PINS")) into $out" >&2
  start=$(date +%s)
  # shellcheck disable=SC2086  # PINS is a list of words
  if ! { "$PYTHON" -m venv "$out" >&2 &&
         "$out/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS" $PINS >&2; }; then
    rm -rf "$out"
    echo "pulp_venv.sh: building the Pulp venv failed (see pip's output above)" >&2
    exit 1
  fi
  for tool in pulpcore-manager pulpcore-api pulpcore-content pulpcore-worker; do
    if [ ! -x "$out/bin/$tool" ]; then
      rm -rf "$out"
      echo "pulp_venv.sh: the Pulp venv has no $tool; build removed" >&2
      exit 1
    fi
  done
  touch "$out/.stamp"
  echo "pulp_venv.sh: built in $(( $(date +%s) - start ))s" >&2
fi
exec 9>&-
printf '%s\n' "$out"

#!/usr/bin/env bash
# Install the Debian packages named as arguments that are not installed yet, on machines as people
# have them: other apt sources, foreign architectures, a mirror in the middle of a sync.
#
# `apt-get update` fails as a whole when any one index cannot be fetched, even when every package
# needed here is installable from the indexes that did load. So an update failure is reported and
# retried, never fatal; only a failed install fails (after retries, each preceded by another update).
# The system's configuration is left alone: no dpkg architecture is added or removed, no source changed.
#
#   tools/apt_install.sh PACKAGE...        (as root, or through sudo: APT_SUDO=sudo)
#   APT_TRIES (default 3), APT_RETRY_DELAY (seconds, default 10),
#   APT_INSTALL_ARGS (extra apt-get install options, e.g. --simulate)
set -uo pipefail

tries=${APT_TRIES:-3}
delay=${APT_RETRY_DELAY:-10}
sudo=${APT_SUDO:-}
read -r -a install_args <<<"${APT_INSTALL_ARGS:-}"

apt_get() {
  $sudo env DEBIAN_FRONTEND=noninteractive ${APT_CONFIG:+APT_CONFIG="$APT_CONFIG"} apt-get "$@"
}

missing=()
for package in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"

# One `apt-get update`, reporting every index it could not fetch. apt exits 0 when an index is only
# unreachable (warnings) and 100 when one is broken (no Release file, hash sums during a mirror sync):
# either way the install below goes on with the indexes that loaded.
update() {
  local log status
  log=$(mktemp)
  apt_get update -q -o Acquire::Retries=3 >"$log" 2>&1
  status=$?
  if grep -qE '^(Err:|E:|W:)' "$log"; then
    echo "apt-get update could not fetch every index (continuing with those that loaded):"
    grep -E '^(Err:|E:|W:)' "$log" | sed 's/^/  /'
  elif [ "$status" -ne 0 ]; then
    echo "apt-get update failed (exit $status; continuing with the indexes that loaded):"
    tail -n 5 "$log" | sed 's/^/  /'
  fi
  rm -f "$log"
}

for attempt in $(seq 1 "$tries"); do
  update
  if apt_get install -y -q --no-install-recommends -o Acquire::Retries=3 "${install_args[@]}" "${missing[@]}"; then
    exit 0
  fi
  if [ "$attempt" -lt "$tries" ]; then
    echo "apt-get install failed (attempt $attempt of $tries); retrying in ${delay}s"
    sleep "$delay"
  fi
done
echo "apt-get install failed after $tries attempts: could not install ${missing[*]}" >&2
exit 1

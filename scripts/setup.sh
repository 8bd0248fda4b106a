#!/usr/bin/env bash
# Set up a fresh Debian machine for n4afs: Debian's fuse3 (the mount needs libfuse 3 and
# fusermount3), rsync and zip (the mount tests use them as real tools), and a virtual
# environment in .venv with n4afs installed editable plus the dev tools. Idempotent and quick
# when nothing changed, so the demo and test commands both call it.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)  # the mount
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)        # mount tests use real tools
command -v zip >/dev/null 2>&1 || need_apt+=(zip)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.n4afs-installed
want=$(sha256sum pyproject.toml | cut -c1-64)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! .venv/bin/python -m pip install -q -e ".[dev,s3,dask]" >.venv/pip.log 2>&1; then
    cat .venv/pip.log
    exit 1
  fi
  .venv/bin/python -c "import n4afs, core" # fail here, loudly, if the install did not work
  echo "$want" >"$stamp"
fi

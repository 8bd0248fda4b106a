#!/usr/bin/env bash
# Set up a fresh Debian machine for n4afs: Debian's fuse3 (the mount needs libfuse 3 and
# fusermount3), rsync and zip (the mount tests use them as real tools), and a virtual
# environment in .venv with n4afs installed editable plus the dev tools. Idempotent and quick
# when nothing changed, so the demo and test commands both call it.
#
# --test-tools (the test command passes it; the demo does not) also installs LibreOffice Calc
# without a GUI: a mount test converts a mounted CSV to xlsx with it, the spreadsheet case of
# the mount. About 90 MB to download, 265 MB on disk, ~30 s to install (measured on Debian 12).
# And the WebDAV clients the `n4afs serve` tests use: curl, rclone, davfs2; Chromium, which
# the report tests open REPORT.html in (headless); and PostgreSQL, whose server the
# shared-index tests start.
set -euo pipefail
cd "$(dirname "$0")/.."

test_tools=false
for arg in "$@"; do
  case "$arg" in
    --test-tools) test_tools=true ;;
    *) echo "setup: unknown argument '$arg' (known: --test-tools)" >&2; exit 2 ;;
  esac
done

need_apt=()
command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)  # the mount
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)        # mount tests use real tools
command -v zip >/dev/null 2>&1 || need_apt+=(zip)
need_apt_lean=()  # installed without Recommends (fonts, Java, a desktop): only what runs
if $test_tools; then
  command -v soffice >/dev/null 2>&1 || command -v libreoffice >/dev/null 2>&1 ||
    need_apt_lean+=(libreoffice-calc-nogui)  # mount test: a mounted CSV opened as a spreadsheet
  command -v mkfs.xfs >/dev/null 2>&1 ||
    need_apt_lean+=(xfsprogs)  # export test: --link reflinks on a loop-mounted XFS image
  command -v localedef >/dev/null 2>&1 ||
    need_apt_lean+=(locales)  # spreadsheet tests open the .xlsx under de_DE and fr_FR
  # `n4afs serve` tests browse the WebDAV server with real clients
  command -v curl >/dev/null 2>&1 || need_apt_lean+=(curl)  # refusals, ranges, ETags, auth
  command -v rclone >/dev/null 2>&1 || need_apt_lean+=(rclone)  # rclone copy of a result
  command -v mount.davfs >/dev/null 2>&1 || need_apt_lean+=(davfs2)  # a kernel mount of it
  # REPORT.html is opened in a real browser: headless screenshot and DOM dump
  command -v chromium >/dev/null 2>&1 || need_apt_lean+=(chromium)
  # the shared-index tests start a real PostgreSQL server (initdb + pg_ctl in a temp folder,
  # run as the package's `postgres` user: the server refuses root)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt_lean+=(postgresql)
fi
missing=("${need_apt[@]}" "${need_apt_lean[@]}")
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq  # once per set-up, for both lists
  apt_install=($sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq)
  if [ ${#need_apt[@]} -gt 0 ]; then
    "${apt_install[@]}" "${need_apt[@]}" >/dev/null
  fi
  if [ ${#need_apt_lean[@]} -gt 0 ]; then
    "${apt_install[@]}" --no-install-recommends "${need_apt_lean[@]}" >/dev/null
  fi
fi

if $test_tools; then  # the comma-decimal locales the spreadsheet tests open files under
  for loc in de_DE fr_FR; do
    if ! locale -a 2>/dev/null | grep -qi "^${loc}\.utf-\?8$"; then
      echo "setup: generating the ${loc}.UTF-8 locale"
      sudo_cmd=""
      [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
      $sudo_cmd localedef -i "$loc" -c -f UTF-8 "${loc}.UTF-8"
    fi
  done
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.n4afs-installed
want=$(sha256sum pyproject.toml | cut -c1-64)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! .venv/bin/python -m pip install -q -e ".[dev,s3,dask,postgres]" >.venv/pip.log 2>&1; then
    cat .venv/pip.log
    exit 1
  fi
  .venv/bin/python -c "import n4afs, n4afs_core" # fail here, loudly, if the install did not work
  echo "$want" >"$stamp"
fi

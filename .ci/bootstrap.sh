#!/usr/bin/env bash
# Create .venv with the package and its test extras on a machine that has only python3, make and
# apt-get. Installs Debian's python3-venv when the interpreter cannot make a venv (root only).
set -euo pipefail
py=${PYTHON:-python3}
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: provisiond needs Python >= 3.11; $py is $("$py" -V 2>&1)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$py" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq python3-venv
      "$py" -m venv .venv
    else
      echo "bootstrap: '$py -m venv' failed; install python3-venv" >&2
      exit 1
    fi
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS:-test}]"

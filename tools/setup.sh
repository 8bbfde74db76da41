#!/usr/bin/env bash
# Everything a fresh Debian machine with Node 20 needs to build, run and test Feature Maps:
# Debian packages, the npm dependencies, and code-server (a real VS Code, offline).
# Safe to run again; each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# chromium: the browser the VS Code UI tests drive; ripgrep: replaces the one code-server's
# postinstall would download; libkrb5-dev: gssapi.h for code-server's kerberos addon;
# fonts-liberation: text in screenshots and in the CLI's contact sheets.
packages=(chromium ripgrep libkrb5-dev fonts-liberation)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
bash tools/setup-code-server.sh

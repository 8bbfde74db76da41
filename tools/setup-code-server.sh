#!/usr/bin/env bash
# Installs the pinned code-server (tools/code-server) so the VS Code tests and
# `npm start` can run a real VS Code offline. Does by hand what code-server's own
# postinstall would do, because that one downloads ripgrep from GitHub and
# refuses to run as root. See /work/shared/guides/VSCODE-TESTS.md.
#
# Idempotent: a marker file records a finished install of this lockfile; a
# second run is a no-op. `--force` reinstalls.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$here/code-server"
cs="$dir/node_modules/code-server"
vscode="$cs/lib/vscode"
marker="$dir/node_modules/.feature-maps-setup-done"

die() {
  echo "setup-code-server: ERROR: $*" >&2
  exit 1
}
step() { echo "setup-code-server: $*"; }

stamp="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1) node $(node --version)"
if [[ "${1:-}" != "--force" && -f "$marker" && "$(cat "$marker")" == "$stamp" ]]; then
  step "already set up ($cs)"
  exit 0
fi

# What the install needs from the machine.
command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"
rg="$(command -v rg || true)"
[[ -n "$rg" ]] || die "ripgrep is missing: apt-get install -y ripgrep"
for tool in make g++ python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (needed to compile argon2, node-pty, kerberos)"
done
[[ -f /usr/include/gssapi/gssapi.h ]] || die "gssapi/gssapi.h is missing (kerberos will not compile): apt-get install -y libkrb5-dev"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$node_major" == "20" ]] || step "warning: code-server 4.100.3 is made for Node 20; this is Node $(node --version)"

export npm_config_yes=true npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
export ONNXRUNTIME_NODE_INSTALL=skip

start=$SECONDS
rm -f "$marker"

step "npm ci in tools/code-server"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci in $dir failed"
[[ -d "$vscode" ]] || die "$vscode is missing after npm ci"

step "compiling argon2"
(cd "$dir" && npm rebuild argon2 --loglevel=error) || die "npm rebuild argon2 failed"

step "installing VS Code's server dependencies"
(cd "$vscode" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error) ||
  die "npm install in $vscode failed"

step "linking ripgrep ($rg) and building native modules"
mkdir -p "$vscode/node_modules/@vscode/ripgrep/bin"
ln -sf "$rg" "$vscode/node_modules/@vscode/ripgrep/bin/rg"
(cd "$vscode" && npm rebuild --loglevel=error) || die "npm rebuild in $vscode failed"

step "links the postinstall would make"
(cd "$vscode" && ln -sfn node_modules node_modules.asar)
(cd "$vscode/bin/remote-cli" && ln -sf code-linux.sh code-server)
(cd "$vscode/bin/helpers" && ln -sf browser-linux.sh browser.sh)

step "built-in extensions' dependencies"
(cd "$vscode/extensions" && npm ci --omit=dev --no-audit --no-fund --loglevel=error) ||
  die "npm ci in $vscode/extensions failed"

# A cheap check that the result starts.
# (with XDG_CONFIG_HOME in a temp dir: it writes a default config file there)
tmp="$(mktemp -d)"
version="$(XDG_CONFIG_HOME="$tmp" XDG_DATA_HOME="$tmp" node "$cs/out/node/entry.js" --version 2>/dev/null | grep -E '^[0-9]' | head -1 || true)"
rm -rf "$tmp"
[[ "$version" == 4.100.3* ]] || die "code-server --version printed '$version', expected 4.100.3"

echo "$stamp" >"$marker"
step "done in $((SECONDS - start)) s: $version"

#!/usr/bin/env bash
# make-torch-oracle.sh OUTDIR
#
# Writes the PyTorch oracle into OUTDIR/torch/: ResNet-18, MobileNetV3-Small, EfficientNet-B0
# (torchvision), ConvNeXt-Tiny (timm) and a small custom nn.Module, with random weights, each
# saved as TorchScript, .pt2, a pickled module, a state_dict and safetensors, with PyTorch's own
# forward-hook activations on ../shared/fixtures/images/chelsea.png (test/oracle/torch_models.py;
# its docstring lists the files). The script loads every file back and checks its output.
#
# The Python comes from a venv built (or reused) at TORCH_VENV (default OUTDIR/.torch-venv) with
# Python 3.11 and torch 2.13.0+cpu, torchvision 0.28.0, timm, onnx, onnxscript, safetensors,
# numpy and pillow from the LOCAL wheel mirror only (pip's configured file:// indexes and
# find-links). Exit 2 when there is no mirror (or no Python 3.11), 1 on any other failure.
# test/oracle/torchvision_cpu_shim.py is installed in the venv (a .pth line) so that the
# mirror's CUDA build of torchvision imports beside torch+cpu.
#
# Idempotent: OUTDIR/torch is reused when its manifest names this script's and the image's sha256.
#
# Environment:
#   TORCH_VENV         the venv (default OUTDIR/.torch-venv); e.g. an existing /work/.torch-venv
#   TORCH_PYTHON       interpreter that makes the venv (default python3.11, else python3)
#   TORCH_MIRRORS      space-separated simple-index folders (default: pip config's file:// indexes)
#   TORCH_FIND_LINKS   space-separated wheel folders (default: pip config's find-links)
#   ORACLE_THREADS     torch threads (default 2)
set -euo pipefail

die() { echo "make-torch-oracle: ERROR: $*" >&2; exit 1; }
# Exit 2: this machine cannot make the venv (no local mirror, no Python 3.11); CI then skips.
cannot() { echo "make-torch-oracle: ERROR: $*" >&2; exit 2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ $# -eq 1 ] || cannot "usage: make-torch-oracle.sh OUTDIR"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=$(cd "$REPO/.." && pwd)/shared
OUTDIR=$(realpath -m "$1")
VENV=$(realpath -m "${TORCH_VENV:-$OUTDIR/.torch-venv}")
SCRIPT=$REPO/test/oracle/torch_models.py
SHIM=$REPO/test/oracle/torchvision_cpu_shim.py
OUT=$OUTDIR/torch
T_ALL=$(now)

[ -d "$SHARED" ] || die "the shared folder $SHARED is missing (it must sit beside the repository)"
IMAGE=$SHARED/fixtures/images/chelsea.png
[ -f "$IMAGE" ] || die "the test image $IMAGE is missing"
[ -f "$SCRIPT" ] && [ -f "$SHIM" ] || die "$SCRIPT or $SHIM is missing"

TORCH_PIN=2.13.0+cpu
TORCHVISION_PIN=0.28.0
want="import torch, torchvision, timm, onnx, onnxscript, safetensors, numpy, PIL
assert torch.__version__ == '$TORCH_PIN', torch.__version__
assert torchvision.__version__.split('+')[0] == '$TORCHVISION_PIN', torchvision.__version__"

# The shim, as site-packages/torchvision_cpu_shim.py + a .pth line that installs its import hook.
install_shim() {
  local site
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cmp -s "$SHIM" "$site/torchvision_cpu_shim.py" || cp "$SHIM" "$site/torchvision_cpu_shim.py"
  echo 'import torchvision_cpu_shim; torchvision_cpu_shim.install()' > "$site/torchvision_cpu_shim.pth"
}

# ---- venv reuse: only when the pinned versions import ------------------------
T=$(now)
if [ -x "$VENV/bin/python" ] && install_shim && "$VENV/bin/python" -c "$want" >/dev/null 2>&1; then
  echo "make-torch-oracle: reusing $VENV ($(since "$T") s to check)"
else
  # ---- the local mirror: nothing is fetched from the internet ---------------
  pip_config() { python3 -m pip config list 2>/dev/null | sed -n "s/^global\.$1='\(.*\)'$/\1/p" | tr ' ' '\n'; }
  if [ -z "${TORCH_MIRRORS:-}" ]; then
    TORCH_MIRRORS=$( { pip_config index-url; pip_config extra-index-url; } | sed -n 's#^file://##p' | tr '\n' ' ')
  fi
  if [ -z "${TORCH_FIND_LINKS:-}" ]; then
    TORCH_FIND_LINKS=$(pip_config find-links | sed 's#^file://##' | grep -v '://' | tr '\n' ' ' || true)
  fi
  [ -n "${TORCH_MIRRORS// /}" ] || cannot "no local wheel mirror: pip's configuration names no file:// index (see 'pip config list'); set TORCH_MIRRORS"
  read -r -a MIRRORS <<< "$TORCH_MIRRORS"
  read -r -a LINKS <<< "$TORCH_FIND_LINKS"
  for m in "${MIRRORS[@]}"; do
    [ -d "$m" ] || cannot "local wheel mirror '$m' is missing. This script installs only from the local
  mirror (pip's configured file:// indexes and find-links), never from the internet. Set TORCH_MIRRORS."
  done
  in_mirror() {
    local m l
    for m in "${MIRRORS[@]}"; do grep -qF "$2" "$m/$1/index.html" 2>/dev/null && return 0; done
    for l in "${LINKS[@]}"; do compgen -G "$l/$2*.whl" >/dev/null && return 0; done
    return 1
  }
  for want_wheel in "torch torch-$TORCH_PIN-" "torchvision torchvision-$TORCHVISION_PIN-" "timm timm-" "onnx onnx-" \
      "onnxscript onnxscript-" "safetensors safetensors-" "numpy numpy-" "pillow pillow-"; do
    read -r pkg prefix <<< "$want_wheel"
    in_mirror "$pkg" "$prefix" || cannot "no $prefix wheel in the local mirror (${MIRRORS[*]} ${LINKS[*]})"
  done
  PIP_INDEX=(--index-url "file://${MIRRORS[0]}")
  for m in "${MIRRORS[@]:1}"; do PIP_INDEX+=(--extra-index-url "file://$m"); done
  for l in "${LINKS[@]}"; do PIP_INDEX+=(--find-links "$l"); done

  # ---- python ---------------------------------------------------------------
  PY=${TORCH_PYTHON:-}
  if [ -z "$PY" ]; then
    if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
  fi
  command -v "$PY" >/dev/null 2>&1 || cannot "no $PY on PATH"
  PYV=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$PYV" = "3.11" ] || cannot "$PY is Python $PYV; the mirror's torch wheel is cp311 (set TORCH_PYTHON)"

  if [ -e "$VENV" ]; then
    [ -f "$VENV/pyvenv.cfg" ] || die "$VENV exists and is not a venv; not replacing it"
    echo "make-torch-oracle: $VENV lacks the pinned versions; making it again"
    rm -rf "$VENV"
  fi
  mkdir -p "$(dirname "$VENV")"
  T=$(now)
  "$PY" -m venv "$VENV"
  echo "make-torch-oracle: venv created in $(since "$T") s"
  T=$(now)
  # PIP_CONFIG_FILE=/dev/null: ignore the machine's pip.conf (its constraints and indexes);
  # --index-url replaces pypi.org, so pip never waits on the network.
  if ! PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 "$VENV/bin/python" -m pip install \
        --disable-pip-version-check --only-binary=:all: "${PIP_INDEX[@]}" \
        "torch==$TORCH_PIN" "torchvision==$TORCHVISION_PIN" timm onnx onnxscript safetensors numpy pillow \
        > "$VENV/pip-install.log" 2>&1; then
    tail -n 30 "$VENV/pip-install.log" >&2
    die "pip install from the local mirror failed (log: $VENV/pip-install.log)"
  fi
  grep '^Successfully installed' "$VENV/pip-install.log" | fold -s -w 110 || true
  echo "make-torch-oracle: pip install took $(since "$T") s"
  install_shim
  "$VENV/bin/python" -c "$want" || { echo "make-torch-oracle: ERROR: the new venv $VENV does not import the pinned versions" >&2; exit 1; }
fi

# ---- reuse OUTDIR/torch when it was made by this script from this image -------
SCRIPT_SHA=$(sha256sum "$SCRIPT" | cut -d' ' -f1)
IMAGE_SHA=$(sha256sum "$IMAGE" | cut -d' ' -f1)
if [ -f "$OUT/manifest.json" ] && grep -q "\"script_sha256\": \"$SCRIPT_SHA\"" "$OUT/manifest.json" \
    && grep -q "\"image_sha256\": \"$IMAGE_SHA\"" "$OUT/manifest.json"; then
  echo "make-torch-oracle: $OUT is up to date (script sha256 ${SCRIPT_SHA:0:12}); total $(since "$T_ALL") s"
  exit 0
fi

# ---- make it in OUTDIR/torch.partial, then move it into place -----------------
T=$(now)
rm -rf "$OUT.partial"
ORACLE_THREADS=${ORACLE_THREADS:-2} "$VENV/bin/python" "$SCRIPT" "$OUT.partial" "$IMAGE"
rm -rf "$OUT"
mv "$OUT.partial" "$OUT"
echo "make-torch-oracle: torch_models.py took $(since "$T") s"
echo "make-torch-oracle: total $(since "$T_ALL") s -> $OUT ($(du -sh "$OUT" | cut -f1)); python: $VENV/bin/python"

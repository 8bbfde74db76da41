#!/usr/bin/env bash
# make-keras-apps-oracle.sh OUTDIR [--set ci|all] [ID ...] [--force] [--f64] [--verify]
# make-keras-apps-oracle.sh OUTDIR --reindex
#
# Writes the Keras oracle of every keras.applications architecture (and of the U-Net,
# autoencoder and layers zoo built in the script) into OUTDIR/keras-apps/<ID>/, by running
# test/oracle/keras_apps.py (its docstring describes every file and the manifest) on
# ../shared/fixtures/images/chelsea.png, one Python process per model, with the venv that
# ../shared/oracle/make-oracle.sh made in OUTDIR/.venv (tensorflow-cpu 2.21.0, keras 3.15.1).
#
#   --set ci     (the default) the small members of every layer family, about 3 GB, see
#                `keras_apps.py --list ci`
#   --set all    every model: about 35 GB at once (EfficientNetB7 alone 4.7 GB, ConvNeXtXLarge
#                3.3 GB). For the slow suite, make one model, test it, delete its folder, then
#                the next: `make-keras-apps-oracle.sh OUT convnextxlarge; <test>;
#                rm -rf OUT/keras-apps/convnextxlarge; make-keras-apps-oracle.sh OUT --reindex`.
#   ID ...       these models (lowercase Keras names: efficientnetb0, convnexttiny, unet, ...)
#   --force      remake a model even if its manifest.json is there with this generator version
#   --f64        also run Keras in float64 and record, per layer, how far its own float32 lands
#                (slow: ConvNeXtTiny 86 s more)
#   --verify     also load both files back into Keras and compare the last layer (slow for
#                big graphs: InceptionResNetV2 75 s); Keras cannot load its own .h5 of
#                MobileNetV3 or ConvNeXt, which the manifest then records
#   --reindex    only rewrite OUTDIR/keras-apps/index.json from the folders present
#
# A model whose manifest.json already has this generator version is skipped, so re-runs are quick.
# Environment: ORACLE_VENV (the venv, default OUTDIR/.venv), ORACLE_THREADS (default 2),
# ORACLE_CHUNK_BYTES (activations per predict() call, default 1.5e9).
set -euo pipefail

die() { echo "make-keras-apps-oracle: ERROR: $*" >&2; exit 2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ $# -ge 1 ] || die "usage: make-keras-apps-oracle.sh OUTDIR [--set ci|all] [ID ...] [--force] [--f64] [--verify] | OUTDIR --reindex"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=$(cd "$REPO/.." && pwd)/shared
SCRIPT=$REPO/test/oracle/keras_apps.py
OUTDIR=$(realpath -m "$1"); shift
VENV=${ORACLE_VENV:-$OUTDIR/.venv}
PY=$VENV/bin/python

[ -d "$SHARED" ] || die "the shared folder $SHARED is missing (it must sit beside the repository)"
IMAGE=$SHARED/fixtures/images/chelsea.png
[ -f "$IMAGE" ] || die "the test image $IMAGE is missing"
[ -f "$SHARED/fixtures/images/coffee.png" ] || die "the calibration image $SHARED/fixtures/images/coffee.png is missing"
[ -x "$PY" ] || die "no Keras venv at $VENV. Make it first with:
  bash $SHARED/oracle/make-oracle.sh $OUTDIR"

SET=; IDS=(); PASS=(); FORCE=; REINDEX=
while [ $# -gt 0 ]; do
  case "$1" in
    --set) [ $# -ge 2 ] || die "--set needs ci or all"; SET=$2; shift 2 ;;
    --set=*) SET=${1#--set=}; shift ;;
    --force) FORCE=1; shift ;;
    --f64|--verify) PASS+=("$1"); shift ;;
    --reindex) REINDEX=1; shift ;;
    -*) die "unknown option $1" ;;
    *) IDS+=("$1"); shift ;;
  esac
done

if [ -n "$REINDEX" ]; then
  "$PY" "$SCRIPT" --reindex "$OUTDIR"
  echo "make-keras-apps-oracle: $OUTDIR/keras-apps/index.json rewritten"
  exit 0
fi
if [ -n "$SET" ] || [ ${#IDS[@]} -eq 0 ]; then
  case "${SET:-ci}" in ci|all) ;; *) die "unknown set '$SET' (ci or all; or name the IDs)" ;; esac
  mapfile -t FROM_SET < <("$PY" "$SCRIPT" --list "${SET:-ci}")
  IDS=("${FROM_SET[@]}" "${IDS[@]}")
fi
VERSION=$("$PY" "$SCRIPT" --version)
mapfile -t KNOWN < <("$PY" "$SCRIPT" --list all)
for id in "${IDS[@]}"; do
  [[ " ${KNOWN[*]} " == *" $id "* ]] || die "unknown model ID '$id'$([[ $id == regnet* ]] && echo ": Keras 3.15's keras.applications has no RegNet"). Known: ${KNOWN[*]}"
done

# The version of the generator that wrote OUTDIR/keras-apps/ID/manifest.json (empty if none).
made_version() {
  local m=$OUTDIR/keras-apps/$1/manifest.json
  [ -f "$m" ] || return 0
  "$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(m.get("version", "") if m.get("generator") == "test/oracle/keras_apps.py" else "")' "$m"
}

START=$(now)
made=0; skipped=0
mkdir -p "$OUTDIR/keras-apps"
for id in "${IDS[@]}"; do
  if [ -z "$FORCE" ] && [ "$(made_version "$id")" = "$VERSION" ]; then
    echo "make-keras-apps-oracle: $id: up to date (version $VERSION), skipped"
    skipped=$((skipped + 1))
    continue
  fi
  T=$(now)
  ORACLE_THREADS=${ORACLE_THREADS:-2} TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} \
    "$PY" "$SCRIPT" "$OUTDIR" "$IMAGE" "$id" "${PASS[@]}" \
    || die "$id failed (its partial output is in $OUTDIR/keras-apps/$id.partial)"
  echo "make-keras-apps-oracle: $id: $(since "$T") s, $(du -sh "$OUTDIR/keras-apps/$id" | cut -f1)"
  made=$((made + 1))
done
echo "make-keras-apps-oracle: $made made, $skipped up to date, $(since "$START") s -> $OUTDIR/keras-apps ($(du -sh "$OUTDIR/keras-apps" | cut -f1), $(df -h --output=avail "$OUTDIR" | tail -1 | tr -d ' ') free)"

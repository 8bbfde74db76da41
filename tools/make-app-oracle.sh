#!/usr/bin/env bash
# make-app-oracle.sh OUTDIR
#
# Writes the Keras oracle for MobileNetV2 and ResNet50 (keras.applications, with their
# classifiers) into OUTDIR/applications/, by running test/oracle/applications.py on
# ../shared/fixtures/images/chelsea.png with the venv that ../shared/oracle/make-oracle.sh
# made in OUTDIR/.venv (tensorflow-cpu 2.21.0, keras 3.15.1). Run that first.
#
# Environment: ORACLE_VENV (the venv, default OUTDIR/.venv), ORACLE_THREADS (default 2).
set -euo pipefail

die() { echo "make-app-oracle: ERROR: $*" >&2; exit 2; }

[ $# -eq 1 ] || die "usage: make-app-oracle.sh OUTDIR"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=$(cd "$REPO/.." && pwd)/shared
OUTDIR=$(realpath -m "$1")
VENV=${ORACLE_VENV:-$OUTDIR/.venv}

[ -d "$SHARED" ] || die "the shared folder $SHARED is missing (it must sit beside the repository)"
IMAGE=$SHARED/fixtures/images/chelsea.png
[ -f "$IMAGE" ] || die "the test image $IMAGE is missing"
[ -x "$VENV/bin/python" ] || die "no Keras venv at $VENV. Make it first with:
  bash $SHARED/oracle/make-oracle.sh $OUTDIR"

START=$(date +%s.%N)
ORACLE_THREADS=${ORACLE_THREADS:-2} TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} \
  "$VENV/bin/python" "$REPO/test/oracle/applications.py" "$OUTDIR" "$IMAGE"
echo "make-app-oracle: took $(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s -> $OUTDIR/applications ($(du -sh "$OUTDIR/applications" | cut -f1))"

#!/usr/bin/env bash
# npm run test:applications [-- ID ...]: the slow suite. Every keras.applications architecture
# (or the IDs given), one at a time: the Keras oracle makes the model's .h5, .keras and Keras'
# activations (tools/make-keras-apps-oracle.sh), test/unit/kerasApps.test.ts opens both files and
# compares every layer, and the model's folder is deleted unless CI's set keeps it (all of them
# at once would need about 35 GB). Each result lands in docs/keras-applications.json and the
# README's table, marked as checked by this suite.
# Environment: ORACLE_CACHE (default ../.oracle-cache, with the Keras venv of make-oracle.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${ORACLE_CACHE:-$(cd .. && pwd)/.oracle-cache}
mapfile -t ci < <(python3 test/oracle/keras_apps.py --list ci)
if [ $# -gt 0 ]; then ids=("$@"); else mapfile -t ids < <(python3 test/oracle/keras_apps.py --list all); fi

node esbuild.js >/dev/null
failed=()
for id in "${ids[@]}"; do
  start=$(date +%s)
  bash tools/make-keras-apps-oracle.sh "$OUT" "$id" >"$OUT/keras-apps-$id.log" 2>&1 || {
    echo "test-applications: the oracle could not make $id (log: $OUT/keras-apps-$id.log)" >&2
    failed+=("$id (oracle)")
    continue
  }
  test() {
    ORACLE_CACHE=$OUT KERAS_APPS=$id FEATURE_MAPS_SUITE='npm run test:applications' \
      npx mocha --no-config --timeout 1800000 dist/test/unit/kerasApps.test.js
  }
  if ! test; then
    # Deep nets (ResNet152) drift past 1e-4 in float32, Keras' own included: remake the oracle with
    # Keras' float64 too, so each layer is held to Keras' own float32 error where that is larger.
    echo "test-applications: $id: again, against Keras' own float32 error (--f64)"
    bash tools/make-keras-apps-oracle.sh "$OUT" "$id" --f64 --force >>"$OUT/keras-apps-$id.log" 2>&1 && test ||
      failed+=("$id")
  fi
  # CI's models stay for `npm test`; the rest go once checked.
  if [[ " ${ci[*]} " != *" $id "* ]]; then
    rm -rf "${OUT:?}/keras-apps/$id"
    bash tools/make-keras-apps-oracle.sh "$OUT" --reindex >/dev/null
  fi
  echo "test-applications: $id took $(($(date +%s) - start)) s"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "test-applications: failed: ${failed[*]}" >&2
  exit 1
fi

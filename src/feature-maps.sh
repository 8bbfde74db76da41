#!/bin/sh
# dist/feature-maps: the CLI (dist/cli-main.js) in one Node process, on Linux and macOS.
# On Linux glibc's malloc is told first to take buffers up to 32 MB from its heap and to keep
# what is freed there (src/engine/mallocTuning.ts says why); `node dist/cli.js` does the same by
# starting Node a second time, about 0.1 s more. Your own mmap_threshold and trim_threshold in
# GLIBC_TUNABLES win.
self=$0
if real=$(readlink -f "$0" 2>/dev/null) && [ -n "$real" ]; then self=$real; fi
dir=$(dirname "$self")
if [ "$(uname -s)" = Linux ]; then
  added=
  case "${GLIBC_TUNABLES:-}" in
    *glibc.malloc.mmap_threshold*) ;;
    *) added=glibc.malloc.mmap_threshold=33554432 ;;
  esac
  case "${GLIBC_TUNABLES:-}" in
    *glibc.malloc.trim_threshold*) ;;
    *) added="${added:+$added:}glibc.malloc.trim_threshold=1073741824" ;;
  esac
  if [ -n "$added" ]; then
    GLIBC_TUNABLES=${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}$added
    export GLIBC_TUNABLES
  fi
fi
exec "${NODE:-node}" "$dir/cli-main.js" "$@"

#!/bin/sh
# dist/feature-maps: the CLI (dist/cli-main.js) in one Node process, on Linux and macOS.
# On Linux glibc's malloc is asked for transparent huge pages first, to take buffers up to 32 MB
# from its heap and to keep what is freed there (src/engine/hugePages.ts says why); `node
# dist/cli.js` does the same by starting Node a second time, about 0.1 s more. Setting
# glibc.malloc.hugetlb yourself in GLIBC_TUNABLES wins, and so do your own mmap_threshold and
# trim_threshold.
self=$0
if real=$(readlink -f "$0" 2>/dev/null) && [ -n "$real" ]; then self=$real; fi
dir=$(dirname "$self")
if [ "$(uname -s)" = Linux ]; then
  case "${GLIBC_TUNABLES:-}" in
    *glibc.malloc.hugetlb*) ;;
    *)
      added=glibc.malloc.hugetlb=1
      case "${GLIBC_TUNABLES:-}" in
        *glibc.malloc.mmap_threshold*) ;;
        *) added="$added:glibc.malloc.mmap_threshold=33554432" ;;
      esac
      case "${GLIBC_TUNABLES:-}" in
        *glibc.malloc.trim_threshold*) ;;
        *) added="$added:glibc.malloc.trim_threshold=1073741824" ;;
      esac
      GLIBC_TUNABLES=${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}$added
      export GLIBC_TUNABLES
      ;;
  esac
fi
exec "${NODE:-node}" "$dir/cli-main.js" "$@"

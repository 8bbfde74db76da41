#!/bin/sh
# dist/feature-maps: the CLI (dist/cli-main.js) in one Node process, on Linux and macOS.
# On Linux glibc's malloc is asked for transparent huge pages first, and to map buffers of 2 MB
# or more on their own (src/engine/hugePages.ts says why); `node dist/cli.js` does the same by
# starting Node a second time, about 0.1 s more. Setting glibc.malloc.hugetlb yourself in
# GLIBC_TUNABLES wins, and so does your own glibc.malloc.mmap_threshold.
self=$0
if real=$(readlink -f "$0" 2>/dev/null) && [ -n "$real" ]; then self=$real; fi
dir=$(dirname "$self")
if [ "$(uname -s)" = Linux ]; then
  case "${GLIBC_TUNABLES:-}" in
    *glibc.malloc.hugetlb*) ;;
    *glibc.malloc.mmap_threshold*) GLIBC_TUNABLES="$GLIBC_TUNABLES:glibc.malloc.hugetlb=1" ;;
    '') GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=2097152 ;;
    *) GLIBC_TUNABLES="$GLIBC_TUNABLES:glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=2097152" ;;
  esac
  export GLIBC_TUNABLES
fi
exec "${NODE:-node}" "$dir/cli-main.js" "$@"

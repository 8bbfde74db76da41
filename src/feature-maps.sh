#!/bin/sh
# dist/feature-maps: the CLI (dist/cli-main.js) in one Node process, on Linux and macOS.
# On Linux glibc's malloc is asked for transparent huge pages first (src/engine/hugePages.ts says
# why); `node dist/cli.js` does the same by starting Node a second time, about 0.1 s more.
# Setting glibc.malloc.hugetlb yourself in GLIBC_TUNABLES wins.
self=$0
if real=$(readlink -f "$0" 2>/dev/null) && [ -n "$real" ]; then self=$real; fi
dir=$(dirname "$self")
if [ "$(uname -s)" = Linux ]; then
  case "${GLIBC_TUNABLES:-}" in
    *glibc.malloc.hugetlb*) ;;
    '') GLIBC_TUNABLES=glibc.malloc.hugetlb=1 ;;
    *) GLIBC_TUNABLES="$GLIBC_TUNABLES:glibc.malloc.hugetlb=1" ;;
  esac
  export GLIBC_TUNABLES
fi
exec "${NODE:-node}" "$dir/cli-main.js" "$@"

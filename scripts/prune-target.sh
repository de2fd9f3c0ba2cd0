#!/usr/bin/env bash
# Keeps a long-lived cargo target directory (the CI build cache) from filling
# the disk. Cargo never deletes an artifact: every feature set, profile or
# dependency change leaves another 100-240 MB test binary behind, and
# incremental state grows without bound (59 GB and a full disk after two
# days of sessions and CI runs on 2026-12-05, which failed CI at link time).
#
#   scripts/prune-target.sh [TARGET_DIR]     default: $CARGO_TARGET_DIR
#
# What it removes, in this order:
# 1. `*/incremental` (CI builds with CARGO_INCREMENTAL=0 and never reads it);
# 2. in `{debug,release}/deps`, every artifact over 1 MB except the newest
#    PRUNE_KEEP (3) of its kind (same crate name and suffix, any hash): the
#    older ones belong to feature sets or lockfiles no longer built;
# 3. if the disk still has less than PRUNE_MIN_FREE_GB (12) free, the whole
#    `debug` directory, then `release` (a cold build is slow; a full disk
#    fails for certain).
# Anything removed that is still needed is rebuilt by cargo (a missing
# output makes its unit stale). Prints the sizes before and after.
set -euo pipefail
dir=${1:-${CARGO_TARGET_DIR:-}}
[ -n "$dir" ] || { echo "prune-target: no target directory given" >&2; exit 2; }
[ -d "$dir" ] || exit 0
keep=${PRUNE_KEEP:-3}
min_free_gb=${PRUNE_MIN_FREE_GB:-12}

free_gb() { df -P -BG "$dir" | awk 'NR == 2 { sub("G", "", $4); print $4 }'; }
size() { du -sh "$dir" 2>/dev/null | cut -f1; }

echo "prune-target: $dir holds $(size), $(free_gb) GB free on its disk"
rm -rf "$dir"/*/incremental
for deps in "$dir"/debug/deps "$dir"/release/deps; do
  [ -d "$deps" ] || continue
  python3 - "$deps" "$keep" <<'EOF'
import os, re, sys
from collections import defaultdict

deps, keep = sys.argv[1], int(sys.argv[2])
kinds = defaultdict(list)
for name in os.listdir(deps):
    m = re.match(r"^(.*)-[0-9a-f]{16}(\.[A-Za-z0-9.]+)?$", name)
    path = os.path.join(deps, name)
    if not m or not os.path.isfile(path) or os.path.islink(path):
        continue
    st = os.stat(path)
    if st.st_size > 1 << 20:
        kinds[(m.group(1), m.group(2) or "")].append((st.st_mtime, path))
freed = 0
for files in kinds.values():
    files.sort(reverse=True)
    for _, path in files[keep:]:
        freed += os.path.getsize(path)
        os.remove(path)
print(f"prune-target: {deps}: {freed / 1e9:.1f} GB of older artifacts removed")
EOF
done
for profile in debug release; do
  [ "$(free_gb)" -ge "$min_free_gb" ] && break
  echo "prune-target: under $min_free_gb GB free: removing $dir/$profile"
  rm -rf "${dir:?}/$profile"
done
echo "prune-target: $dir holds $(size), $(free_gb) GB free"

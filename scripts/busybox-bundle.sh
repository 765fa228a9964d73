#!/usr/bin/env bash
# Makes an OCI bundle in DEST: a busybox rootfs and berth-runtime's default config.json,
# set to run ARGS... without a terminal.
#   busybox-bundle.sh DEST RUNTIME_BINARY [ARGS...]
set -euo pipefail
dest=${1:?usage: busybox-bundle.sh DEST RUNTIME_BINARY [ARGS...]}
runtime=${2:?usage: busybox-bundle.sh DEST RUNTIME_BINARY [ARGS...]}
shift 2
here=$(dirname "$(readlink -f "$0")")
mkdir -p "$dest"
"$here/busybox-rootfs.sh" "$dest/rootfs"
rm -f "$dest/config.json"
"$runtime" spec --bundle "$dest"
python3 - "$dest/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:] or ["/bin/true"]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = args
spec["hostname"] = "berth"
json.dump(spec, open(path, "w"), indent=2)
PY

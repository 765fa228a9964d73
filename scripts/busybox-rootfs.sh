#!/usr/bin/env bash
# Makes a busybox root filesystem in DEST from Debian's busybox-static: the binary, a link for
# every applet, and the few files a container expects. Nothing is downloaded.
set -euo pipefail
dest=${1:?usage: busybox-rootfs.sh DEST}
bb=$(command -v busybox) || { echo "busybox is missing: run scripts/deps.sh" >&2; exit 1; }
mkdir -p "$dest"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var/run}
chmod 1777 "$dest/tmp"
cp "$bb" "$dest/bin/busybox"
for applet in $("$bb" --list-full); do
  [ "$applet" = "bin/busybox" ] || ln -sf /bin/busybox "$dest/$applet"
done
cat > "$dest/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$dest/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G

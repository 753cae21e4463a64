#!/bin/sh
# make-user-data.sh [--gzip] DEB > user-data : fill user-data.in with the
# package. --gzip: the user-data gzip-compressed (cloud-init unpacks it
# itself), what fits OpenStack Nova's 65,535 bytes of base64 user-data.
set -eu
gz=
[ "${1:-}" = --gzip ] && { gz=1; shift; }
[ $# = 1 ] && [ -f "$1" ] || { echo "usage: $0 [--gzip] vshare-agent_VERSION_amd64.deb" >&2; exit 2; }
b64=$(base64 -w0 "$1")
if [ -n "$gz" ]; then
	sed "s|@DEB_BASE64@|$b64|" "$(dirname "$0")/user-data.in" | gzip -9n
else
	sed "s|@DEB_BASE64@|$b64|" "$(dirname "$0")/user-data.in"
fi

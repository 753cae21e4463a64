#!/bin/sh
# make-user-data.sh DEB > user-data : fill user-data.in with the package.
set -eu
[ $# = 1 ] && [ -f "$1" ] || { echo "usage: $0 vshare-agent_VERSION_amd64.deb" >&2; exit 2; }
b64=$(base64 -w0 "$1")
sed "s|@DEB_BASE64@|$b64|" "$(dirname "$0")/user-data.in"

#!/bin/sh
# docs/protocol.md must be what gen-schema.py makes of protocol/schema.json.
cd "$(dirname "$0")/../.." || exit 1
echo 1..2
tmp=$(mktemp)
trap 'rm -f $tmp' EXIT
if python3 protocol/gen-schema.py md protocol/schema.json "$tmp"; then
	echo "ok 1 - schema generates"
else
	echo "not ok 1 - schema generates"
fi
if diff -u docs/protocol.md "$tmp" >/dev/null; then
	echo "ok 2 - docs/protocol.md agrees with the schema"
else
	echo "not ok 2 - docs/protocol.md agrees with the schema (make docs)"
	diff -u docs/protocol.md "$tmp" | sed 's/^/# /' | head -20
fi

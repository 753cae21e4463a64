#!/bin/sh
# The C code is clang-format'ed (.clang-format: kernel style).
cd "$(dirname "$0")/../.." || exit 1
echo 1..1
out=$(make -s format-check 2>&1)
if [ $? -eq 0 ]; then
	echo "ok 1 - clang-format clean"
else
	echo "not ok 1 - clang-format clean (make format)"
	echo "$out" | head -20 | sed 's/^/# /'
fi

#!/bin/sh
# C unit tests of libvshare-host; data files beside them.
cd "$(dirname "$0")/../.." || exit 1
exec env G_TEST_SRCDIR="$PWD/tests/unit" build/san/test-host --tap

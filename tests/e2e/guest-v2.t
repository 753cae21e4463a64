#!/bin/sh
exec python3 "$(dirname "$0")/guest.py" --cgroup v2

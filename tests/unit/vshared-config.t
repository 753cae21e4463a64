#!/bin/sh
exec python3 "$(dirname "$0")/vshared-config.py"

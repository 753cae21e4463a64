#!/bin/sh
exec python3 "$(dirname "$0")/policy.py"

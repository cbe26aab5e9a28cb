#!/usr/bin/env bash
# pip_install.sh PIP ARGS...: `PIP install -q ARGS...` with one kind of stderr line dropped,
# "WARNING: Location '...' is ignored: it is neither a file nor a directory.", which some machines' pip
# configuration prints once per package it looks up (an index folder that does not exist). Every other warning and
# every error still shows, and pip's own exit status is this script's (the filter is a process substitution).
set -euo pipefail
pip=$1; shift
"$pip" install -q "$@" 2> >(grep -v -E "^WARNING: Location '[^']*' is ignored: it is neither a file nor a directory\.$" >&2)

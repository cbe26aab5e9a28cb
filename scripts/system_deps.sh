#!/usr/bin/env bash
# System packages the sandbox and tests need, and a running Docker engine.
# Idempotent: installs only what is missing, starts dockerd only if none answers.
set -euo pipefail
packages=(bubblewrap docker.io mmdebstrap debootstrap runsc chromium)  # chromium: the viewer tests (headless layout probes)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "system_deps: missing ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash "$(dirname "$0")/start_dockerd.sh"

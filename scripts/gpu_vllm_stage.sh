#!/usr/bin/env bash
# Stage vLLM 0.24.0 and verl 0.9.1 (+ ray) onto the offline GPU device, one carried part per call.
#   here:  build [verl|vllm]  download the pinned cp312 wheels, prune, pack .stage/BUNDLE.tar.xz.partNN + manifest
#          plan [BUNDLE...]   which parts each back-to-back device call carries, and its command
#          resolve            (PY312=python3.12) re-resolve vllm+verl against the device's packages; diff with the pins
#   there: receive            copy this call's carried parts into $STAGE_ROOT/stage (default /tmp/stage), sha256-checked
#          status             parts present/missing per bundle (+ one JSON line)
#          install BUNDLE     check the whole archive, unpack into $STAGE_ROOT/site (/tmp/site), run the import probe
#          probe [BUNDLE...]  import each bundle's modules with PYTHONPATH=/tmp/site; print what fails
# docs/gpu-staging.md has the sizes and the call sequence. Nothing on the device side needs a network.
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
  build) shift; exec python3 scripts/stage_build.py "$@" ;;
  resolve) shift; exec python3 scripts/stage_resolve.py "$@" ;;
  *) exec python3 scripts/stage_bundle.py "$@" ;;
esac

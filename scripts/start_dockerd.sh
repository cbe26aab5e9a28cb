#!/usr/bin/env bash
# Start a Docker engine with no bridge and no iptables changes (containers get only `lo`),
# unless one already answers. Used by `make test` / CI, where no engine runs at boot.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then echo "start_dockerd: no engine answers and not root; start dockerd yourself" >&2; exit 1; fi
log=/var/log/codedance-dockerd.log
nohup dockerd --iptables=false --ip-forward=false --bridge=none >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 0.5
done
echo "start_dockerd: dockerd did not answer within 30 s; see $log" >&2
tail -5 "$log" >&2
exit 1

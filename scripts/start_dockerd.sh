#!/usr/bin/env bash
# Start a Docker engine for the sandbox tests / CI, unless one already answers.
#
# The engine runs with no bridge and no iptables changes (`--iptables=false --bridge=none`):
# sandbox containers only ever use `--network none`, and a CI host's firewall stays untouched.
# gVisor (`runsc`) is registered through /etc/docker/daemon.json with `--network=none` as runtime
# argument (without it runsc refuses to start in the root network namespace).
#
# Careful with a dockerd that already runs: it is never restarted or re-configured; if it lacks
# the runsc runtime we only say so (the gVisor test then skips with that reason).
set -euo pipefail

daemon_json=${CODEDANCE_DAEMON_JSON:-/etc/docker/daemon.json}
log=${CODEDANCE_DOCKERD_LOG:-/var/log/codedance-dockerd.log}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

if engine_answers; then
  if command -v runsc >/dev/null && ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
    echo "start_dockerd: a dockerd already runs without the runsc runtime; left as is (gVisor tests will skip)" >&2
  fi
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "start_dockerd: no Docker engine answers and not root; start dockerd yourself" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  echo "start_dockerd: dockerd is not installed (apt-get install docker.io, or run scripts/system_deps.sh)" >&2
  exit 1
fi

# Add runsc to daemon.json, keeping every other key a user may have put there (atomic rewrite).
if command -v runsc >/dev/null; then
  mkdir -p "$(dirname "$daemon_json")"
  python3 - "$daemon_json" "$(command -v runsc)" <<'EOF'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
config = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        config = json.load(f)
runtimes = config.setdefault("runtimes", {})
if "runsc" not in runtimes:
    runtimes["runsc"] = {"path": runsc, "runtimeArgs": ["--network=none"]}
    with open(path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
EOF
fi

# A stale pid file from a dockerd that died (e.g. a killed CI container) blocks a new start.
pidfile=/var/run/docker.pid
if [[ -f $pidfile ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi

# setsid: the engine must outlive the make/pytest process that started it.
setsid nohup dockerd --iptables=false --ip-forward=false --bridge=none >>"$log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if engine_answers; then exit 0; fi
  sleep 0.5
done
echo "start_dockerd: dockerd did not answer within 60 s; see $log" >&2
tail -5 "$log" >&2
exit 1

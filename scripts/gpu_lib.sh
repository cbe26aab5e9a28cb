# Helpers the GPU check scripts share (sourced, not run): carried wheels, timed steps, detached start/await.
# The sourcing script sets WORK (its work folder), LOGS (what it reports), OUT_DIR (where `await` packs LOGS),
# PY (the python that runs codedance) and PACK (the tarball's name).
# A detached job lives only as long as the machine: it is handed back 30 s after a call ends, so the `await` call
# must follow `start` at once (write it before making the `start` call; 2026-12-03 lost an RL run to a late one).
# Even written beforehand it came too late three more times that day (once ~34 s after the call ended), so a job
# should send back early what it cannot afford to redo (gpu_rl_check.sh sends its SFT checkpoint).
# Device time is counted on held time, which ran 3-20 % past a call's wall time in the calls of 2026-12-03 (most with a
# cold start or a large carry): leave that margin in WAIT.

export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH

install_wheels() {  # the wheels the device lacks travel in .whl/; installed once per machine under /tmp/site
  # only on a GPU machine: the wheels are built for the device's Python, and a CPU run of a phase must not take them
  command -v nvidia-smi >/dev/null || return 0
  if compgen -G ".whl/*.whl" >/dev/null && ! $PY -c "import swift, msgspec" 2>/dev/null; then
    # pip --target --upgrade replaces /tmp/site/bin whole: keep the scripts staged bundles put there (vllm, ray)
    local kept; kept=$(mktemp -d)
    [[ -d /tmp/site/bin ]] && cp -a /tmp/site/bin/. "$kept"/
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    mkdir -p /tmp/site/bin
    local script  # put back only what the upgrade did not write (`cp -n` does this, but newer coreutils warn on it)
    for script in "$kept"/* "$kept"/.[!.]*; do
      if [[ -e $script && ! -e /tmp/site/bin/${script##*/} ]]; then cp -a "$script" /tmp/site/bin/; fi
    done
    rm -rf "$kept"
  fi
}

# A function, so `codedance ... &` forks a bash subshell: a signal sent to $! reaches that subshell (which ignores
# SIGINT as every background job of a script does), never Python. Start servers with `$PY -m codedance_cli` instead.
codedance() { $PY -m codedance_cli "$@"; }

running() {  # running PID: the process exists and has not exited (a zombie, not yet reaped by `wait`, has)
  [[ -e /proc/$1 && $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

stop_within() {  # stop_within PID [GRACE]: SIGTERM, SIGKILL after GRACE s (30); a child that will not stop never holds the run
  local pid=$1 grace=${2:-30} waited=0
  kill -TERM "$pid" 2>/dev/null
  while ((waited < grace)) && running "$pid"; do sleep 1; waited=$((waited + 1)); done
  if running "$pid"; then echo "pid $pid still running ${grace} s after SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
  wait "$pid" 2>/dev/null
}

timed() {  # timed NAME COMMAND...: run with its output in $LOGS/NAME.log, print its tail and keep the wall time
  local name=$1 start=$SECONDS status=0; shift
  "$@" > "$LOGS/$name.log" 2>&1 || status=$?
  grep -v Loading "$LOGS/$name.log" | tail -n 16
  echo "$name wall s: $((SECONDS - start)) (exit $status)" | tee -a "$LOGS/walls.txt"
  return $status
}

together() {  # together PID...: wait for every background job, fail if any failed
  local status=0 pid
  for pid in "$@"; do wait "$pid" || status=1; done
  return $status
}

gpu_memory_watch() {  # gpu_memory_watch FILE: sample used GPU memory every 0.5 s in the background; prints the pid
  command -v nvidia-smi >/dev/null || return 0
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$1" &
  echo $!
}

await_run() {  # follow $WORK/run.log until the detached run writes $WORK/exit or WAIT seconds pass; pack the logs
  [[ -f $WORK/run.log ]] || { echo "no detached run under $WORK: call '$0 start' first" >&2; exit 2; }
  local deadline=$((SECONDS + ${WAIT:-560})) shown=0
  while [[ ! -f $WORK/exit ]] && ((SECONDS < deadline)); do
    sleep 5
    local lines; lines=$(wc -l < "$WORK/run.log")
    ((lines > shown)) && sed -n "$((shown + 1)),${lines}p" "$WORK/run.log"
    shown=$lines
  done
  sed -n "$((shown + 1)),\$p" "$WORK/run.log"
  if declare -F progress >/dev/null; then progress; fi  # the sourcing script's view of jobs still running
  tar -czf "$OUT_DIR/$PACK" -C "$WORK" out run.log
  if [[ -f $WORK/exit ]]; then echo "detached run ended: exit $(cat "$WORK/exit")"; return "$(cat "$WORK/exit")"; fi
  echo "detached run still going: call '$0 await' again"
}

start_detached() {  # start_detached SCRIPT OUT_DIR: run `SCRIPT all OUT_DIR` in its own session, then follow it
  rm -f "$WORK/exit"
  setsid nohup bash -c "bash '$1' all '$2' > '$WORK/run.log' 2>&1; echo \$? > '$WORK/exit'" < /dev/null > /dev/null 2>&1 &
  sleep 1
  await_run
}

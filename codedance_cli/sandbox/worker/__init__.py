"""CodeDance sandbox warm worker: one process that hosts many isolated, stateful sessions.

Self-contained on purpose (stdlib + numpy/PIL/cv2/matplotlib/seccomp, all optional but PIL): the local
backend runs this folder inside bubblewrap and the Docker backend copies the *same folder* into its image
and runs `python3 -I /opt/codedance/worker`, so no module here may import codedance_cli (outside this
package) or pydantic. The orchestrator imports only `framing` from here. Protocol and layers are
documented in docs/sandbox.md; the wire format (framing.py) is:

    frame = 4-byte big-endian length + UTF-8 JSON object

Requests (orchestrator -> worker, on stdin) carry an integer "id"; every reply echoes it:
    {"id", "op": "open", "session", "images": [base64...], "limits": {...}} -> {"id", "ok", "session"}
    {"id", "op": "run", "session", "code", "timeout_s"}                   -> {"id", "ok", "observation": {...}}
    {"id", "op": "close", "session"}                                      -> {"id", "ok"}
    {"id", "op": "ping"} -> {"id", "ok", "sessions"};  {"id", "op": "shutdown"} -> {"id", "ok"}, exit
The worker first sends {"op": "ready", "pid", "python", "layers": {...}, "warnings": [...]}.

Each session is a child forked from this pre-imported process: own process group, private
directory as cwd, rlimits, its own unprivileged uid when the worker is root, seccomp; the child
keeps the session's namespace across cells. A timeout or crash kills the child's process group
and the session restarts clean (variables lost, files in its directory kept).

Modules: framing (wire format), lockdown (warm imports, seccomp, rlimits, uid), runtime (the session
child's namespace and cells), capture (which images go back), processes (the worker's side of each
child), loop (request loop and `main`), __main__ (entry point).

Nothing is imported here: the orchestrator imports `framing` without pulling in the rest.
"""

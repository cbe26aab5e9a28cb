"""The Docker backend for real: hardening flags applied, limits enforced and reported, containers recycled, gVisor.

These tests start dockerd themselves (scripts/start_dockerd.sh) and build the image if it is missing or holds
an older worker (offline debootstrap path; cached afterwards). CI runs them; set CODEDANCE_SKIP_DOCKER=1 to
skip them deliberately on a machine without Docker.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time

import pytest

from codedance_cli.recipes.common import DockerSandboxConfig, SandboxConfig
from codedance_cli.sandbox.docker_backend import DockerSandbox
from codedance_cli.sandbox.docker_container import OWNER_LABEL, WORKER_CAPS
from conftest import run_codedance

RESTARTED_NOTE = "[sandbox] the sandbox container died; this session was restarted: variables from earlier cells are lost"

pytestmark = pytest.mark.docker
IMAGE = "codedance-sandbox:latest"


@pytest.fixture(scope="module")
def docker_image() -> str:
    """A running engine and the current image (built here when missing: minutes once, then cached)."""
    if os.environ.get("CODEDANCE_SKIP_DOCKER") == "1":
        pytest.skip("CODEDANCE_SKIP_DOCKER=1")
    from codedance_cli.sandbox.image import build_image

    result = build_image(IMAGE)
    assert result.worker_sha256, "the image carries no worker hash label"
    return IMAGE


def sandbox_config(**docker: object) -> SandboxConfig:
    return SandboxConfig(backend="docker", timeout_s=20, docker=DockerSandboxConfig(**{"pool_size": 1, **docker}))


def docker_api():
    import docker

    return docker.from_env()


def test_image_rebuild_is_a_no_op_when_cached(docker_image: str) -> None:
    from codedance_cli.sandbox.image import build_image

    started = time.monotonic()
    result = build_image(docker_image)
    assert result.built is False
    assert time.monotonic() - started < 15


def test_container_flags_are_applied_inside_and_out(docker_image: str, monkeypatch) -> None:
    probe = r"""
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
root = [line.split() for line in open("/proc/self/mounts") if line.split()[1] == "/"][0]
try:
    open("/etc/probe", "w")
    etc = "writable"
except OSError as exc:
    etc = exc.strerror
print(json.dumps({
    "uid": os.getuid(), "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
    "root_options": root[3].split(","), "etc": etc,
    "interfaces": [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]],
    "secret_env": [k for k in os.environ if "KEY" in k or "TOKEN" in k],
}))
"""

    async def scenario() -> tuple[dict, dict, dict]:
        config = sandbox_config(memory_mb=700, cpus=0.5, pids_limit=128, tmpfs_mb=100)
        async with DockerSandbox(config) as sandbox:
            async with await sandbox.open_session() as session:
                observation = await session.run(probe)
                assert observation.ok, observation.error
                container = docker_api().containers.get(session.container.container.id)
                return json.loads(observation.stdout), container.attrs, sandbox.layers

    monkeypatch.setenv("CODEDANCE_TEST_API_KEY", "must-not-leak")
    inside, attrs, layers = asyncio.run(scenario())
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and sorted(host["CapAdd"]) == sorted(WORKER_CAPS)
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == host["MemorySwap"] == 700 << 20
    assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 128
    assert "size=100m" in host["Tmpfs"]["/tmp"] and host["AutoRemove"] is True and host["Init"] is True
    assert attrs["Config"]["Labels"][OWNER_LABEL]
    # inside: the session runs as its own unprivileged uid with no capabilities, root fs read-only, only `lo`
    assert inside["uid"] >= 1_000_000 and inside["cap_eff"] == "0000000000000000" and inside["no_new_privs"] == "1"
    assert "ro" in inside["root_options"] and inside["etc"] in ("Read-only file system", "Permission denied")
    assert inside["interfaces"] == ["lo"] and inside["secret_env"] == []
    assert layers == {"seccomp": True, "setuid": True, "container": "runc"}


def test_unprivileged_container_mode_runs_cells(docker_image: str) -> None:
    async def scenario():
        async with DockerSandbox(sandbox_config(user="10001:10001")) as sandbox:
            async with await sandbox.open_session() as session:
                observation = await session.run("import os\nprint(os.getuid())\nImage.new('RGB', (64, 64)).crop((0, 0, 32, 32))")
                container = docker_api().containers.get(session.container.container.id)
                return observation, container.attrs["HostConfig"], sandbox.layers

    observation, host, layers = asyncio.run(scenario())
    assert observation.ok and observation.stdout == "10001\n" and len(observation.images) == 1
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and layers["setuid"] is False


def test_memory_limit_kills_the_session_and_is_reported(docker_image: str) -> None:
    async def scenario():
        # RLIMIT_AS far above the container limit: the cgroup, not the rlimit, has to stop this cell
        config = sandbox_config(memory_mb=300).model_copy(update={"memory_mb": 4096})
        async with DockerSandbox(config) as sandbox:
            async with await sandbox.open_session() as session:
                await session.run("kept = 1")
                hog = await session.run("import numpy as np\nblock = np.ones(700 << 20, dtype=np.uint8)\nprint('survived')")
                after = await session.run("print('alive', 'kept' in globals())")
            async with await sandbox.open_session() as fresh:
                next_session = await fresh.run("print(6 * 7)")
        return hog, after, next_session

    hog, after, next_session = asyncio.run(scenario())
    assert hog.error_type == "MemoryLimit", (hog.error_type, hog.error)
    assert "300 MB" in hog.error and "survived" not in hog.stdout
    assert after.ok and after.stdout.startswith("alive")  # same session, restarted clean
    assert next_session.ok and next_session.stdout == "42\n"


def test_pids_limit_caps_a_fork_loop(docker_image: str) -> None:
    fork_loop = """
import os, time
forked, error = 0, None
for _ in range(500):
    try:
        pid = os.fork()
    except OSError as exc:
        error = type(exc).__name__
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    forked += 1
print(forked, error)
"""

    async def scenario():
        config = sandbox_config(pids_limit=48).model_copy(update={"max_processes": 10_000})  # the cgroup must stop it
        async with DockerSandbox(config) as sandbox:
            async with await sandbox.open_session() as session:
                bomb = await session.run(fork_loop)
            async with await sandbox.open_session() as fresh:  # its processes were killed on close
                after = await fresh.run("import subprocess; print(subprocess.run(['true']).returncode)")
        return bomb, after

    bomb, after = asyncio.run(scenario())
    forked, error = bomb.stdout.split()
    assert int(forked) < 48 and error == "BlockingIOError", bomb.stdout
    assert after.ok and after.stdout == "0\n", (after.error_type, after.error)


def test_containers_are_recycled_after_n_sessions_and_replaced_after_a_crash(docker_image: str) -> None:
    async def scenario():
        async with DockerSandbox(sandbox_config(sessions_per_container=2)) as sandbox:
            ids = []
            for _ in range(3):
                async with await sandbox.open_session() as session:
                    assert (await session.run("print(1)")).ok
                    ids.append(session.container.container.id)
            await asyncio.gather(*sandbox.retiring)
            recycled_gone = not docker_api().containers.list(all=True, filters={"id": ids[0]})
            session = await sandbox.open_session()
            await session.run("x = 5")
            docker_api().containers.get(session.container.container.id).kill()  # the container dies under it
            await asyncio.sleep(0.5)
            restarted = await session.run("print('back', 'x' in globals())")
            await session.close()
        return ids, recycled_gone, restarted

    ids, recycled_gone, restarted = asyncio.run(scenario())
    assert ids[0] == ids[1] != ids[2] and recycled_gone
    assert restarted.ok and restarted.stdout == "back False\n" and RESTARTED_NOTE in restarted.stderr


def test_no_container_outlives_the_sandbox(docker_image: str) -> None:
    async def scenario() -> str:
        async with DockerSandbox(sandbox_config(pool_size=2)) as sandbox:
            async with await sandbox.open_session() as session:
                await session.run("print(1)")
            return sandbox.owner

    owner = asyncio.run(scenario())
    time.sleep(1)
    assert docker_api().containers.list(all=True, filters={"label": f"{OWNER_LABEL}={owner}"}) == []


def test_cli_runs_a_script_in_docker(docker_image: str, tmp_path) -> None:
    from PIL import Image

    Image.new("RGB", (200, 100), "blue").save(tmp_path / "in.png")
    (tmp_path / "crop.py").write_text("print(input_image.size)\ninput_image.crop((0, 0, 50, 50))\n")
    result = run_codedance("sandbox", "run", "--backend", "docker", "--image", tmp_path / "in.png",
                           "--out", tmp_path / "out", "--json", tmp_path / "crop.py")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["stdout"] == "(200, 100)\n" and len(payload["images"]) == 1


def runsc_registered() -> bool:
    result = subprocess.run(["docker", "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True, timeout=60)
    return '"runsc"' in result.stdout


def test_gvisor_runtime_runs_a_cell(docker_image: str) -> None:
    if not runsc_registered():
        pytest.skip("the running dockerd has no runsc runtime (scripts/start_dockerd.sh registers it when it starts dockerd)")

    async def scenario():
        async with DockerSandbox(sandbox_config(runtime="runsc", pids_limit=256)) as sandbox:
            async with await sandbox.open_session() as session:
                return await session.run(
                    "import platform, socket\nprint(platform.release())\n"
                    "try:\n    socket.socket(socket.AF_INET).connect(('10.0.0.1', 80))\nexcept OSError as e:\n    print(type(e).__name__)\n"
                    "input_image_missing = input_image is None\nImage.new('RGB', (64, 64)).crop((0, 0, 32, 32))"
                )

    observation = asyncio.run(scenario())
    assert observation.ok, (observation.error_type, observation.error)
    release, network = observation.stdout.split()
    assert release == "4.4.0"  # gVisor's user-space kernel, not the host's
    assert network == "PermissionError" and len(observation.images) == 1


def test_a_container_that_stops_answering_is_replaced(docker_image: str, monkeypatch) -> None:
    from codedance_cli.sandbox import worker_session

    monkeypatch.setattr(worker_session, "GRACE_S", 1.0)

    async def scenario():
        async with DockerSandbox(sandbox_config()) as sandbox:
            session = await sandbox.open_session()
            frozen = session.container.container.id
            docker_api().containers.get(frozen).pause()  # the worker can no longer answer
            hung = await session.run("print(1)", timeout_s=1)
            await asyncio.gather(*sandbox.retiring)
            after = await session.run("print('fresh')")
            await session.close()
        return frozen, hung, after

    frozen, hung, after = asyncio.run(scenario())
    assert hung.error_type == "SandboxError" and "stopped answering" in hung.error
    assert after.ok and after.stdout == "fresh\n" and RESTARTED_NOTE in after.stderr
    assert not docker_api().containers.list(all=True, filters={"id": frozen})


def test_a_missing_image_is_one_clear_error(docker_image: str) -> None:
    from codedance_cli.sandbox.protocol import WorkerError

    async def scenario() -> None:
        async with DockerSandbox(sandbox_config(image="codedance-sandbox:no-such-tag")) as sandbox:
            await sandbox.open_session()

    with pytest.raises(WorkerError, match="build-image"):
        asyncio.run(scenario())


def test_dockerfile_and_offline_build_share_the_layout_the_backend_expects(repo_root) -> None:
    from codedance_cli.sandbox.docker_container import MPL_CACHE_IN_IMAGE, WORKER_IN_IMAGE

    dockerfile = (repo_root / "docker" / "sandbox" / "Dockerfile").read_text()
    script = (repo_root / "scripts" / "build_sandbox_rootfs.sh").read_text()
    for text in (dockerfile, script):
        assert WORKER_IN_IMAGE in text and MPL_CACHE_IN_IMAGE in text
    assert f"COPY worker {WORKER_IN_IMAGE}" in dockerfile and "opencv-python-headless" in dockerfile and "pyseccomp" in dockerfile

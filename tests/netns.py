"""Tests that start Ray run in a network and process namespace of their own, with a local Ray cluster there.

Outside a namespace, Ray binds to and connects through the machine's own
non-loopback interface even when told ``--node-ip-address 127.0.0.1``; test
traffic must stay on loopback. So a Ray test module is collected twice: in the
normal run, only its ``test_in_a_network_namespace`` (made by ``rerun_here``)
runs, and it runs the module again with pytest inside ``unshare --net --pid``,
where the only interface is ``lo``; there the other tests run and the
``ray_cluster`` fixture starts a head node (``ray start --head``) and stops it.
The process namespace ends every process Ray started when the re-run ends, and
lets ``ray stop`` see only this cluster's processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

NAMESPACE_ENV = "PLAYGROUND_IN_NETNS"  # set to 1 inside the re-run
REQUIRE_RAY_ENV = "PLAYGROUND_REQUIRE_RAY"  # CI: a missing Ray fails instead of skipping
RAY_PORT = 6380
RAY_CPUS = 2
RERUN_SECONDS = 1500  # a re-run takes 2-4 min on a quiet 2-core machine, 10 on one loaded to 30


def in_namespace() -> bool:
    return os.environ.get(NAMESPACE_ENV) == "1"


def why_no_namespace() -> str | None:
    """Why this machine cannot make the namespace (None if it can)."""
    if os.geteuid() != 0:
        return "a network namespace needs root (unshare --net): CI runs as root"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (util-linux, iproute2)"
    probe = subprocess.run([*_unshare(), "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare --net --pid failed here: {probe.stderr.strip()}"
    return None


def why_no_ray() -> str | None:
    try:
        import ray  # noqa: F401  (only in the test process that asks)
        import ray.util.state  # noqa: F401  (ray[default]: the state API and the dashboard)
    except ImportError as error:
        return f"ray[default] is not installed ({error}); pip install -r requirements-dev.txt"
    return None


def _unshare() -> list[str]:
    # --kill-child: if the re-run is killed (a timeout), everything in its namespaces goes with it.
    return ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]


def namespace_command(argv: list[str]) -> list[str]:
    """``argv`` in a fresh network and process namespace whose loopback is up."""
    return [*_unshare(), "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


def rerun_here(module_file: str, timeout: float = RERUN_SECONDS):
    """A test for ``module_file`` that runs the module's other tests again inside a namespace.

    Assign it in the module: ``test_in_a_network_namespace = rerun_here(__file__)``.
    """

    @pytest.mark.slow
    @pytest.mark.timeout(timeout + 60)
    def test_in_a_network_namespace():
        if in_namespace():
            pytest.skip("this is the re-run inside the namespace")
        reason = why_no_ray() or why_no_namespace()
        if reason:
            if os.environ.get(REQUIRE_RAY_ENV) == "1":
                pytest.fail(f"{REQUIRE_RAY_ENV}=1 but {reason}")
            pytest.skip(reason)
        root = Path(module_file).resolve().parents[1]
        module = str(Path(module_file).resolve().relative_to(root))
        argv = [sys.executable, "-m", "pytest", module, "--deselect", f"{module}::test_in_a_network_namespace",
                "-q", "-p", "no:cacheprovider", "-rs", "--tb=short"]  # fmt: skip
        env = {**os.environ, NAMESPACE_ENV: "1"}
        done = subprocess.run(namespace_command(argv), cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        output = done.stdout + done.stderr
        print(output)
        assert done.returncode == 0, f"the re-run in the namespace failed:\n{output[-6000:]}"
        last = output.strip().splitlines()[-1]
        assert " passed" in last, last
        if os.environ.get(REQUIRE_RAY_ENV) == "1":  # CI: every test of the module must have run
            assert " skipped" not in last, f"something did not run in the namespace: {last}"

    return test_in_a_network_namespace


def only_in_namespace() -> None:
    """Skip the calling test outside the namespace (the module's re-run test runs it there)."""
    if not in_namespace():
        pytest.skip("starts Ray: runs inside its own network namespace (test_in_a_network_namespace)")


@dataclass(frozen=True)
class Cluster:
    address: str  # host:port of the head node's GCS
    temp_dir: Path


def start_cluster(temp_dir: Path, cpus: int = RAY_CPUS) -> Cluster:
    """``ray start --head`` on loopback only, with ``cpus`` CPUs and the dashboard (the state API needs it)."""
    command = [_ray(), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(RAY_PORT),
               "--dashboard-host", "127.0.0.1", "--include-dashboard", "true", "--num-cpus", str(cpus),
               "--num-gpus", "0", "--temp-dir", str(temp_dir), "--disable-usage-stats"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{done.stdout}\n{done.stderr}")
    return Cluster(f"127.0.0.1:{RAY_PORT}", temp_dir)


def stop_cluster() -> None:
    """``ray stop`` (in the namespace: only this cluster's processes), then wait for them to be gone."""
    subprocess.run([_ray(), "stop", "--force"], capture_output=True, text=True, timeout=120)
    deadline = time.monotonic() + 30
    while leftover_processes() and time.monotonic() < deadline:
        time.sleep(0.2)


def leftover_processes() -> list[str]:
    """Live processes of this process namespace other than this one (zombies do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), 1):
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if not fields.get("State", "").startswith("Z"):
            found.append(f"{entry.name} {fields.get('Name', '?').strip()}")
    return found


def listening_addresses() -> set[str]:
    """The local addresses of every listening TCP socket here (``ss -ltn``)."""
    lines = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout.splitlines()
    return {line.split()[3].rsplit(":", 1)[0] for line in lines if line.strip()}


def shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def _ray() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if found is None:
        raise RuntimeError("the ray command is not installed beside this Python")
    return found


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray head node with 2 CPUs for this module, stopped (with every process it started) after it."""
    only_in_namespace()
    shm_before = shm_entries()
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths have a length cap
    cluster = start_cluster(temp_dir)
    try:
        yield cluster
    finally:
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()
        stop_cluster()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert leftover_processes() == [], "Ray left processes behind"
    assert shm_entries() - shm_before == set(), "Ray left shared memory behind"

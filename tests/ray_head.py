"""A `ray start --head` of a test's own, a stop that touches only it, and `ray job submit`'s
client calls as a CLI user makes them (submit once the job agent is up, wait for a final status).

`ray stop` kills every Ray process on the machine (it matches process names), which would take
down other test sessions and other users' clusters. Instead the head is started in a new
session (setsid) and stopped by signalling exactly the processes of that session: the GCS,
raylet, dashboard, workers, and the fake autoscaler's worker nodes all inherit it.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()   # state ppid pgrp session ...
        if int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


@dataclass
class RayHead:
    num_cpus: int = 2
    dashboard: bool = False
    autoscaling_config: str | None = None
    env: dict = field(default_factory=dict)
    # Unix socket paths must stay under ~107 bytes: a short temp dir, not pytest's tmp_path.
    temp_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="wr", dir="/tmp"))
    port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    sid: int | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self, timeout_s: float = 120) -> "RayHead":
        cmd = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
               f"--num-cpus={self.num_cpus}", f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
               f"--include-dashboard={'true' if self.dashboard else 'false'}"]
        # Every port that has a fixed default gets a free one: another Ray on this machine (a
        # colleague's tests, a `wit demo`) already holds the defaults, and a dashboard agent that
        # cannot bind leaves the job server with "No available agent".
        cmd += [f"--{name}={free_port()}" for name in (
            "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
            "ray-client-server-port", "runtime-env-agent-port")]
        if self.dashboard:
            cmd += ["--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}"]
        if self.autoscaling_config:
            cmd.append(f"--autoscaling-config={self.autoscaling_config}")
        # Job entrypoints run `python`/`wit` from PATH: make it this venv's.
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               "RAY_USAGE_STATS_ENABLED": "0",
               # Ray 2.60 turns token auth on when ~/.ray/auth_token exists (any earlier local
               # ray.init() writes one); a test head stays hermetic with auth off. Clusters: README.
               "RAY_AUTH_MODE": "disabled", "DASHBOARD_METRIC_PORT": str(free_port()), **self.env}
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.sid = proc.pid
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        if proc.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed ({proc.returncode}):\n{out[-4000:]}")
        return self

    def stop(self, grace_s: float = 3) -> None:
        # The GCS server does not exit on SIGTERM while it waits for its raylets; a throwaway test
        # cluster has nothing to flush, so a short grace then SIGKILL.
        if self.sid is None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
            for pid in session_pids(self.sid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while session_pids(self.sid) and time.monotonic() < deadline:
                time.sleep(0.2)
        left = session_pids(self.sid)
        self.sid = None
        if not left and not os.environ.get('WIT_KEEP_RAY_TMP'):
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        if left:
            raise RuntimeError(f"Ray processes still alive after SIGKILL: {left}")

    def __enter__(self) -> "RayHead":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def submit_when_ready(client, timeout_s: float, **job) -> str:
    """`ray start` returns before the head's dashboard agent has registered with the job server;
    until it has, submissions fail with 'No available agent'. A CLI user sees the same race."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def wait_for_job(client, job_id: str, timeout_s: float):
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_job_status(job_id)
        if status in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
            return status
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still {status} after {timeout_s} s:\n{client.get_job_logs(job_id)}")

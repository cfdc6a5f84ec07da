"""Flower's deployment runtime on one machine: a SuperLink and one SuperNode per hospital.

:class:`LocalDeployment` starts the processes, each in its own process
group, with insecure (plain HTTP) connections on 127.0.0.1 only:

- one ``flower-superlink`` with ``--disable-runtime-dependency-installation``
  (without it, submitting a run installs the app's dependencies from the
  package index), which starts the ServerApp in a subprocess;
- one ``flower-supernode`` per hospital, whose node config names only its
  own site file, and which starts a fresh ClientApp process per message.

``flwr run`` submits the app in :mod:`fedmed_lab.flower_app` (folder
``project``) to the SuperLink named in ``$FLWR_HOME/config.toml``, which
this module writes (Flower 1.42 reads connections from there, not from the
app's ``pyproject.toml``). :meth:`LocalDeployment.stop` stops every process
group it started, and nothing else.

Command line::

    python -m fedmed_lab.flower_app.deployment --num-rounds 3

runs the capstone task end to end and prints the largest parameter
difference from the course simulator.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedmed_lab import logger
from fedmed_lab.flower_app.runtime import flower_environment
from fedmed_lab.flower_app.site_files import write_site_files
from fedmed_lab.flower_app.task import CapstoneTask, make_cohorts, run_course_simulator

PROJECT_DIR = Path(__file__).resolve().parent / "project"
HOST = "127.0.0.1"
CONNECTION_NAME = "fedmed-local"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (another process may take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def write_flower_config(flwr_home: Path, superlink_port: int) -> Path:
    """Write ``$FLWR_HOME/config.toml`` with one insecure connection to the local SuperLink."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    path = flwr_home / "config.toml"
    path.write_text(
        "[superlink]\n"
        f'default = "{CONNECTION_NAME}"\n\n'
        f"[superlink.{CONNECTION_NAME}]\n"
        f'address = "{HOST}:{superlink_port}"\n'
        "insecure = true\n",
        encoding="utf-8",
    )
    return path


def wait_for_port(port: int, process: subprocess.Popen, *, timeout: float) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``.

    Raises
    ------
    RuntimeError
        If ``process`` exits first or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args[0]} exited with code {process.returncode} before "
                               f"listening on {HOST}:{port}; see its log")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on {HOST}:{port} within {timeout} s")


@dataclass
class LocalDeployment:
    """A SuperLink and one SuperNode per hospital on 127.0.0.1, started and stopped together.

    Use it as a context manager, so the processes stop even when a run fails::

        with LocalDeployment(task, Path("build/flower/deployment")) as deployment:
            result_file = deployment.run()
    """

    task: CapstoneTask
    work_dir: Path
    watcher: object | None = None  # a SocketWatcher; each started process is added to it
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir).resolve()
        self.flwr_home = self.work_dir / "flwr_home"
        self.log_dir = self.work_dir / "logs"
        self.environment = flower_environment(self.flwr_home)

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - the child owns it
        with log:
            process = subprocess.Popen(command, env=self.environment, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=self.work_dir, start_new_session=True)
        self.processes[name] = process
        if self.watcher is not None:
            self.watcher.watch(process.pid)
        logger.info("started %s (pid %d)", name, process.pid)
        return process

    def start(self, *, timeout: float = 60.0) -> None:
        """Start the SuperLink, wait for its port, then start one SuperNode per hospital."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        site_files = write_site_files(make_cohorts(self.task), self.work_dir / "sites")
        self.superlink_port = free_port()
        write_flower_config(self.flwr_home, self.superlink_port)
        bin_dir = Path(sys.executable).parent

        superlink = self._spawn("superlink", [
            str(bin_dir / "flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
            "--host", HOST, "--port", str(self.superlink_port),
        ])
        wait_for_port(self.superlink_port, superlink, timeout=timeout)

        for site_file in site_files:
            self._spawn(f"supernode-{site_file.stem}", [
                str(bin_dir / "flower-supernode"), "--insecure", "--superlink", f"{HOST}:{self.superlink_port}",
                "--host", HOST, "--port", str(free_port()),
                "--node-config", f'site-file="{site_file}"',
            ])

    def run(self, *, timeout: float = 120.0) -> Path:
        """Submit the capstone app with ``flwr run`` and wait for its result file.

        Raises
        ------
        RuntimeError
            If ``flwr run`` fails, a started process exits, or no result
            arrives within ``timeout`` seconds.
        """
        result_file = self.work_dir / "deployment_result.json"
        result_file.unlink(missing_ok=True)
        run_config = " ".join(f"{key}={value}" for key, value in self.task.to_run_config().items())
        run_config += f' result-file="{result_file}"'
        submit = subprocess.run(
            [str(Path(sys.executable).parent / "flwr"), "run", str(PROJECT_DIR), CONNECTION_NAME,
             "--run-config", run_config],
            env=self.environment, cwd=self.work_dir, capture_output=True, text=True, timeout=timeout,
        )
        (self.log_dir / "flwr-run.log").write_text(submit.stdout + submit.stderr, encoding="utf-8")
        if submit.returncode != 0:
            raise RuntimeError(f"flwr run failed with code {submit.returncode}: {submit.stderr.strip()[-500:]}")

        deadline = time.monotonic() + timeout
        while not result_file.is_file():
            exited = [name for name, process in self.processes.items() if process.poll() is not None]
            if exited:
                raise RuntimeError(f"{exited} exited during the run; see the logs in {self.log_dir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no result in {result_file} after {timeout} s; see the logs in {self.log_dir}")
            time.sleep(0.2)
        return result_file

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop every process group this deployment started: SIGTERM, then SIGKILL after ``timeout`` s."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) ignored SIGTERM for %s s; killing its process group",
                               name, process.pid, timeout)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            # The ServerApp and ClientApp subprocesses share the group; make sure none outlives its parent.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        logger.info("stopped %d Flower processes", len(self.processes))

    def __enter__(self) -> LocalDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = CapstoneTask()
    parser = argparse.ArgumentParser(
        description="Run the capstone task in Flower's deployment runtime: a SuperLink and one SuperNode "
                    "per hospital on 127.0.0.1, stopped when the run ends.")
    parser.add_argument("--work-dir", type=Path, default=Path("build/flower/deployment"),
                        help="folder for site files, FLWR_HOME, logs and the result (default: %(default)s)")
    parser.add_argument("--num-rounds", type=int, default=defaults.num_rounds, help="federated rounds")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the cohort draw")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the run's result")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from fedmed_lab.flower_app.server_app import read_result, read_round_seconds
    from fedmed_lab.flower_app.sockets import SocketWatcher

    args = _parse_args(argv)
    task = CapstoneTask(seed=args.seed, num_rounds=args.num_rounds)
    with SocketWatcher() as watcher, LocalDeployment(task, args.work_dir, watcher=watcher) as deployment:
        result_file = deployment.run(timeout=args.timeout)

    history = run_course_simulator(task)
    reference = np.array([history.initial_parameters] + [r.parameters for r in history.rounds])
    difference = float(np.max(np.abs(read_result(result_file) - reference)))
    seconds = read_round_seconds(result_file)
    print(f"deployment runtime: {task.num_rounds} rounds, median {np.median(seconds):.1f} s per round")
    print(f"largest parameter difference from the course simulator: {difference:.1e}")
    exposed = watcher.non_loopback() + watcher.non_loopback_peers()
    print(f"listening sockets seen: {len(watcher.sockets)}, connections seen: {len(watcher.peers)}, "
          f"not on loopback: {len(exposed)}")
    for entry in exposed:
        print(f"  {entry.process} (pid {entry.pid}) {entry.protocol} {entry.ip}:{entry.port}")
    return 0 if difference < 1e-6 and not exposed else 1


if __name__ == "__main__":
    sys.exit(main())

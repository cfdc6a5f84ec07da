"""Flower's simulation runtime in a child process, and the environment of every Flower process.

Flower 1.42 and Ray contact outside servers unless configured not to, and Ray
binds to the machine's network address by default. :func:`flower_environment`
returns the variables that switch this off; every process the course starts
for Flower gets them. The simulation runs in a child process
(``python -m fedmed_lab.flower_app.runtime``) so that Ray and its helper
processes are the child's descendants: the caller can list their sockets
and stop them all by stopping one process group.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from fedmed_lab import logger
from fedmed_lab.flower_app.site_files import write_site_files
from fedmed_lab.flower_app.task import CapstoneTask, make_cohorts

# Settings for every Flower process, each with what it switches off (read in
# the flwr 1.42 and ray 2.55 sources):
QUIET_ENVIRONMENT = {
    "FLWR_TELEMETRY_ENABLED": "0",  # Flower's usage events
    "FLWR_DISABLE_UPDATE_CHECK": "1",  # Flower's check for a newer release
    "RAY_USAGE_STATS_ENABLED": "0",  # Ray's usage statistics
    # Ray treats the machine as a one-node local cluster, so every Ray
    # socket binds to 127.0.0.1 instead of the machine's network address.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


def flower_environment(flwr_home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment for a Flower process: ``base`` plus the quiet settings and ``FLWR_HOME``.

    The running interpreter's ``bin`` folder goes first on ``PATH``, because
    the SuperLink and SuperNodes start ``flower-superexec`` by name.
    """
    environment = dict(os.environ if base is None else base)
    environment.update(QUIET_ENVIRONMENT)
    bin_dir = str(Path(sys.executable).parent)
    environment["PATH"] = os.pathsep.join([bin_dir, environment.get("PATH", "")])
    environment["FLWR_HOME"] = str(Path(flwr_home).resolve())
    return environment


def run_simulation_runtime(task: CapstoneTask, work_dir: Path) -> Path:
    """Run ``task`` in Flower's simulation runtime in this process; return the result file.

    Call it in a process whose environment came from :func:`flower_environment`
    (the command line below does this): Ray reads the variables when it starts.
    """
    from flwr.simulation import run_simulation

    from fedmed_lab.flower_app.client_app import make_client_app
    from fedmed_lab.flower_app.server_app import make_server_app

    work_dir = Path(work_dir).resolve()
    site_files = write_site_files(make_cohorts(task), work_dir / "sites")
    result_file = work_dir / "simulation_result.json"
    result_file.unlink(missing_ok=True)

    # Ray's Unix socket paths must fit in 107 bytes, so its session goes
    # to a short folder under the system temp directory, not under work_dir.
    ray_dir = tempfile.mkdtemp(prefix="fedmed-ray-")
    backend_config = {
        # One Ray worker runs the five clients in turn: fewer processes to start on a busy machine.
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": 1, "num_gpus": 0, "include_dashboard": False, "logging_level": "error",
                      "_temp_dir": ray_dir},
    }
    try:
        run_simulation(
            server_app=make_server_app(task, result_file),
            client_app=make_client_app(task, site_files),
            num_supernodes=len(site_files),
            backend_config=backend_config,
        )
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    if not result_file.is_file():
        raise RuntimeError(f"the simulation runtime finished without writing {result_file}; see its log above")
    return result_file


def start_simulation_process(task: CapstoneTask, work_dir: Path, *, log_file: Path | None = None) -> subprocess.Popen:
    """Start the simulation runtime in a child process in its own process group, and return it."""
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_file or work_dir / "simulation.log"
    command = [sys.executable, "-m", "fedmed_lab.flower_app.runtime", "--work-dir", str(work_dir)]
    for key, value in task.to_run_config().items():
        command += [f"--{key}", str(value)]
    with open(log_file, "w", encoding="utf-8") as log:
        return subprocess.Popen(command, env=flower_environment(work_dir / "flwr_home"), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def finish_simulation_process(process: subprocess.Popen, *, timeout: float) -> None:
    """Wait for a process from :func:`start_simulation_process`; stop its whole group on timeout.

    Raises
    ------
    RuntimeError
        If the process runs longer than ``timeout`` seconds (it is then
        killed with its descendants) or exits with a non-zero code.
    """
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise RuntimeError(f"the simulation runtime ran longer than {timeout} s and was stopped; "
                           "see simulation.log in its work folder") from None
    finally:
        # Ray's helper processes share the group; none may outlive the run.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.returncode != 0:
        raise RuntimeError(f"the simulation runtime exited with code {process.returncode}; "
                           "see simulation.log in its work folder")


# Ray 2.55 gives its raylet a fixed 30 s to register (ray/_private/node.py).
# On a heavily loaded machine it can miss that deadline, so the run is retried.
RAY_STARTUP_TIMEOUT_MESSAGE = "timed out during startup"


def run_simulation_process(task: CapstoneTask, work_dir: Path, *, timeout: float = 240.0, attempts: int = 2,
                           watcher=None) -> Path:
    """Run the simulation runtime in a child process until it finishes; return the result file.

    A run that fails because Ray's raylet missed its start-up deadline is
    retried, up to ``attempts`` runs in all. Each child's pid is added to
    ``watcher`` (a :class:`~fedmed_lab.flower_app.sockets.SocketWatcher`) if given.

    Raises
    ------
    RuntimeError
        If the last attempt fails; the message ends with the log's last lines.
    """
    work_dir = Path(work_dir).resolve()
    for attempt in range(1, attempts + 1):
        process = start_simulation_process(task, work_dir)
        if watcher is not None:
            watcher.watch(process.pid)
        try:
            finish_simulation_process(process, timeout=timeout)
            return work_dir / "simulation_result.json"
        except RuntimeError as error:
            log = (work_dir / "simulation.log").read_text(encoding="utf-8", errors="replace")
            if attempt < attempts and RAY_STARTUP_TIMEOUT_MESSAGE in log:
                logger.warning("Ray did not start in time (attempt %d of %d); retrying", attempt, attempts)
                continue
            raise RuntimeError(f"{error}\n{log[-2000:]}") from None
    raise AssertionError("unreachable: the loop returns or raises")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = CapstoneTask()
    parser = argparse.ArgumentParser(description="Run the capstone task in Flower's simulation runtime.")
    parser.add_argument("--work-dir", type=Path, default=Path("build/flower/simulation"),
                        help="folder for site files, Ray's session and the result (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the cohort draw")
    parser.add_argument("--num-rounds", type=int, default=defaults.num_rounds, help="federated rounds")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="local full-batch steps per round")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="local step size")
    parser.add_argument("--l2", type=float, default=defaults.l2, help="L2 penalty of the logistic regression")
    parser.add_argument("--cohort-scale", type=float, default=defaults.cohort_scale,
                        help="factor on every hospital's patient count (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    task = CapstoneTask(seed=args.seed, num_rounds=args.num_rounds, epochs=args.epochs,
                        learning_rate=args.learning_rate, l2=args.l2, cohort_scale=args.cohort_scale)
    missing = sorted(key for key in QUIET_ENVIRONMENT if os.environ.get(key) != QUIET_ENVIRONMENT[key])
    if missing:
        # Ray reads these when it starts, so restart this command with them set.
        arguments = sys.argv[1:] if argv is None else list(argv)
        environment = flower_environment(args.work_dir.resolve() / "flwr_home")
        os.execve(sys.executable, [sys.executable, "-m", "fedmed_lab.flower_app.runtime", *arguments], environment)
    try:
        result_file = run_simulation_runtime(task, args.work_dir)
    except Exception:  # noqa: BLE001 - report and exit, whatever failed inside Flower or Ray
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        # Flower leaves non-daemon threads behind after a crash, so a normal
        # exit would hang; end the process without waiting for them.
        os._exit(1)
    print(f"simulation runtime: {task.num_rounds} rounds written to {result_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

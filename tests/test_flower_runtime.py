"""Flower against the course simulator: in-process DP wrapper, simulation and deployment runtimes.

The runtime tests start real Flower processes on 127.0.0.1 (about 30 s
each on 2 cores); select them with ``-m flower``.
"""

import logging
import subprocess
import sys

import numpy as np
import psutil
import pytest

from fedmed_lab.flower_app.central_dp import (
    central_dp_round,
    flower_effective_noise_multiplier,
    flower_noise_std,
    weighted_sensitivity,
)
from fedmed_lab.flower_app.deployment import LocalDeployment
from fedmed_lab.flower_app.flower_dp import flower_dp_aggregate
from fedmed_lab.flower_app.runtime import (
    QUIET_ENVIRONMENT,
    flower_environment,
    run_simulation_process,
)
from fedmed_lab.flower_app.server_app import read_result, read_round_seconds
from fedmed_lab.flower_app.sockets import SocketWatcher, is_loopback_address, listening_sockets
from fedmed_lab.flower_app.task import CapstoneTask, make_hospitals, run_course_simulator
from fedmed_lab.aggregation import weighted_average
from fedmed_lab.privacy import clip_update

pytestmark = pytest.mark.flower

TOLERANCE = 1e-6


@pytest.fixture(autouse=True)
def quiet_flower_log():
    logging.getLogger("flwr").setLevel(logging.WARNING)


def course_rounds(task):
    history = run_course_simulator(task)
    return np.array([history.initial_parameters] + [r.parameters for r in history.rounds])


@pytest.fixture(scope="module")
def first_round_updates():
    task = CapstoneTask()
    hospitals = make_hospitals(task)
    start = task.model.initial_parameters(hospitals[0].num_features)
    updates = [h.fit(start, task.model, task.local, np.random.default_rng(0)) for h in hospitals]
    return start, [u.parameters for u in updates], [u.num_examples for u in updates]


# --- sockets -----------------------------------------------------------------

@pytest.mark.parametrize("ip, expected", [
    ("127.0.0.1", True), ("127.5.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("::ffff:10.1.2.3", False),
])
def test_loopback_address_classification(ip, expected):
    assert is_loopback_address(ip) is expected


def test_socket_listing_sees_child_process(tmp_path):
    code = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "print(s.getsockname()[1], flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        found = listening_sockets([psutil.Process().pid])
    finally:
        child.kill()
        child.wait()
    assert any(s.pid == child.pid and s.port == port and s.ip == "127.0.0.1" for s in found)


def test_socket_watcher_records_peers():
    code = ("import socket, time; server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen(); "
            "client = socket.create_connection(server.getsockname()); peer, _ = server.accept(); "
            "print(server.getsockname()[1], flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        with SocketWatcher([child.pid]) as watcher:
            pass
    finally:
        child.kill()
        child.wait()
    assert any(p.pid == child.pid and p.port == port and p.ip == "127.0.0.1" for p in watcher.peers)
    assert watcher.non_loopback_peers() == []


def test_flower_environment_is_quiet(tmp_path):
    environment = flower_environment(tmp_path / "home", base={"PATH": "/usr/bin"})
    for key, value in QUIET_ENVIRONMENT.items():
        assert environment[key] == value
    assert environment["FLWR_HOME"] == str((tmp_path / "home").resolve())
    assert environment["PATH"].split(":")[0] == str(__import__("pathlib").Path(sys.executable).parent)


# --- DP wrapper, in process ----------------------------------------------------

def test_flower_dp_clipping_equal_weights_matches_course(first_round_updates):
    start, params, sizes = first_round_updates
    clipping_norm = 0.35  # below three of the five update norms, so clipping acts
    assert sum(np.linalg.norm(p - start) > clipping_norm for p in params) >= 3
    flower = flower_dp_aggregate(start, params, sizes, clipping_norm=clipping_norm, noise_multiplier=0.0,
                                 weighted=False)
    course = central_dp_round(start, params, clipping_norm=clipping_norm, noise_multiplier=0.0,
                              rng=np.random.default_rng(0))
    assert np.max(np.abs(flower - course)) < 1e-12


def test_flower_dp_clipping_weighted_is_sample_weighted(first_round_updates):
    start, params, sizes = first_round_updates
    flower = flower_dp_aggregate(start, params, sizes, clipping_norm=0.35, noise_multiplier=0.0)
    expected = start + weighted_average([clip_update(p - start, clipping_norm=0.35) for p in params], sizes)
    equal_weights = central_dp_round(start, params, clipping_norm=0.35, noise_multiplier=0.0,
                                     rng=np.random.default_rng(0))
    assert np.max(np.abs(flower - expected)) < 1e-12
    assert np.max(np.abs(flower - equal_weights)) > 1e-3


def test_flower_dp_noise_std_ignores_weights(first_round_updates):
    start, params, sizes = first_round_updates
    clipping_norm, noise_multiplier = 0.35, 1.0
    clean = flower_dp_aggregate(start, params, sizes, clipping_norm=clipping_norm, noise_multiplier=0.0)
    noise = np.array([flower_dp_aggregate(start, params, sizes, clipping_norm=clipping_norm,
                                          noise_multiplier=noise_multiplier) - clean for _ in range(200)])
    expected = flower_noise_std(noise_multiplier=noise_multiplier, clipping_norm=clipping_norm,
                                num_sampled_clients=len(sizes))
    # 2,200 draws: the sample std is within 5% of the true one with overwhelming probability.
    assert noise.std() == pytest.approx(expected, rel=0.05)

    # Measured against the weighted average's sensitivity, the noise is about a third of sigma.
    effective = noise.std() / weighted_sensitivity(sizes, clipping_norm=clipping_norm)
    assert effective == pytest.approx(flower_effective_noise_multiplier(sizes, noise_multiplier=1.0), rel=0.05)
    assert effective < 0.4 * noise_multiplier


# --- runtimes ------------------------------------------------------------------

@pytest.fixture(scope="module")
def simulation_run(tmp_path_factory):
    task = CapstoneTask(num_rounds=3)
    work_dir = tmp_path_factory.mktemp("simulation")
    with SocketWatcher() as watcher:
        result_file = run_simulation_process(task, work_dir, watcher=watcher)
    return task, result_file, watcher


def test_simulation_runtime_matches_course(simulation_run):
    task, result_file, _ = simulation_run
    flower = read_result(result_file)
    course = course_rounds(task)
    assert flower.shape == course.shape == (4, 11)
    assert np.max(np.abs(flower - course)) < TOLERANCE
    # The model moved, so the match is not two copies of the start.
    assert np.max(np.abs(course[-1] - course[0])) > 0.1


def test_simulation_runtime_listens_on_loopback_only(simulation_run):
    _, _, watcher = simulation_run
    names = {s.process for s in watcher.sockets}
    assert any("raylet" in name or "gcs_server" in name for name in names), names
    assert watcher.non_loopback() == []
    assert watcher.peers
    assert watcher.non_loopback_peers() == []


@pytest.fixture(scope="module")
def deployment_run(tmp_path_factory):
    task = CapstoneTask(num_rounds=2)
    work_dir = tmp_path_factory.mktemp("deployment")
    with SocketWatcher() as watcher, LocalDeployment(task, work_dir, watcher=watcher) as deployment:
        result_file = deployment.run(timeout=150)
        pids = [p.pid for p in deployment.processes.values()]
    return task, result_file, watcher, pids


def test_deployment_runtime_matches_course(deployment_run):
    task, result_file, _, _ = deployment_run
    flower = read_result(result_file)
    course = course_rounds(task)
    assert flower.shape == course.shape == (3, 11)
    assert np.max(np.abs(flower - course)) < TOLERANCE
    assert len(read_round_seconds(result_file)) == 2


def test_deployment_runtime_listens_on_loopback_only(deployment_run):
    _, _, watcher, pids = deployment_run
    names = {s.process for s in watcher.sockets}
    assert {s.pid for s in watcher.sockets} & set(pids), names
    assert watcher.non_loopback() == []
    assert watcher.peers
    assert watcher.non_loopback_peers() == []


def test_deployment_processes_stopped(deployment_run):
    _, _, _, pids = deployment_run
    assert len(pids) == 6  # one SuperLink and five SuperNodes
    alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []

"""Execute one assembled submission in a fresh course kernel, within limits.

Student code runs only in the kernel, a separate process started for this
submission in a temporary working directory that holds only a copy of the
submission. The grader process sends cells and reads replies through
nbclient; it never executes student code.

Test results travel through a file, not through cell outputs. Each restored
test cell is wrapped so that it appends one JSON record to a results file
outside the working directory: a per-run random token, the cell id, passed
or not, and the exception's type and message. Printing "passed" or hiding
tracebacks therefore changes nothing. NOTE: student code runs in the same
process as the wrapper, so a student who reads the wrapper's source from the
kernel's history could write a forged record. The grader counts a record
only for a test cell whose execution completed, and two records for one
cell count as a failure. A forged record therefore earns nothing as long as
the real test cell runs, but code called from inside a running test could
still forge that test's record.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.util import Finalize
from pathlib import Path

from jupyter_client import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from fedmed_lab import logger
from fedmed_lab.exercises import TestCell
from fedmed_lab.kernel import KERNEL_NAME

# Seconds the grader waits beyond a limit for an interrupted kernel before killing it.
KILL_GRACE_SECONDS = 5.0

# Output messages past the output budget after which a cell counts as a flood
# and is interrupted. ipykernel sends a printing loop's output about five
# times a second, so a flood is stopped within about a second.
FLOOD_MESSAGES = 5


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission.

    cell_timeout and total_timeout are seconds of wall-clock time.
    memory_bytes caps the kernel's address space (RLIMIT_AS), and
    output_bytes caps the outputs the grader keeps from the whole notebook.
    """

    cell_timeout: float = 30.0
    total_timeout: float = 120.0
    memory_bytes: int = 2 * 1024**3
    output_bytes: int = 1024**2


@dataclass
class ExecutionReport:
    """Events of one kernel run: recorded test results, timeouts, memory errors, output overflow, kernel death."""

    records: dict[str, list[dict]] = field(default_factory=dict)
    timed_out_cells: list[str] = field(default_factory=list)
    cell_timeouts: dict[str, float] = field(default_factory=dict)
    completed_cells: set[str] = field(default_factory=set)
    memory_error_cells: list[str] = field(default_factory=list)
    output_limited: bool = False
    output_interrupted_cells: list[str] = field(default_factory=list)
    kernel_died_at: str | None = None
    total_timeout_at: str | None = None
    seconds: float = 0.0


def setup_source(limits: Limits) -> str:
    """Return the first cell the kernel runs: it caps the kernel's own address space.

    Soft and hard limits are set together, so code running later in the
    kernel cannot raise them again.
    """
    return (
        "import resource as _fedmed_resource\n"
        f"_fedmed_resource.setrlimit(_fedmed_resource.RLIMIT_AS, ({int(limits.memory_bytes)}, "
        f"{int(limits.memory_bytes)}))\n"
        "del _fedmed_resource"
    )


def wrap_test_source(test: TestCell, results_path: Path, token: str, imports: str = "") -> str:
    """Return a cell that runs ``test`` in the user namespace and records its outcome in ``results_path``.

    Before the test, ``fedmed_lab.checking`` is reloaded and ``imports`` (the
    solution's own import statements) run again, so a student who rebinds
    ``check_array`` or patches the checking module does not change the test.
    Any exception, KeyboardInterrupt and SystemExit included, is a failure.
    The record holds only the exception's type and message, never a traceback.
    """
    return f'''# Test cell {test.cell_id}, run and recorded by the fedmed-lab grader
def _fedmed_grader_run_test():
    import importlib
    import json
    import fedmed_lab.checking
    record = {{"token": {token!r}, "cell": {test.cell_id!r}}}
    try:
        importlib.reload(fedmed_lab.checking)
        exec(compile({imports!r}, "<grader imports>", "exec"), get_ipython().user_ns)
        exec(compile({test.source!r}, "<{test.cell_id}>", "exec"), get_ipython().user_ns)
        record.update(passed=True, error="", message="")
    except BaseException as error:
        try:
            message = str(error)
        except BaseException:
            message = "(the exception's message could not be converted to text)"
        record.update(passed=False, error=type(error).__name__, message=message[:2000])
    with open({str(results_path)!r}, "a", encoding="utf-8") as results:
        results.write(json.dumps(record) + "\\n")
_fedmed_grader_run_test()
del _fedmed_grader_run_test'''


def new_token() -> str:
    """Return a fresh random token that marks this run's result records."""
    return secrets.token_hex(16)


@dataclass
class KernelSlot:
    """A fresh course kernel started in an empty working folder, reserved for one submission.

    ``scratch/work`` is the kernel's working directory. ``scratch/results``
    contains its IPC sockets and the test results file, outside the kernel's
    working directory.
    """

    scratch: Path
    manager: AsyncKernelManager

    @property
    def work_dir(self) -> Path:
        return self.scratch / "work"

    @property
    def results_dir(self) -> Path:
        return self.scratch / "results"


async def _launch_slot() -> KernelSlot:
    scratch = Path(tempfile.mkdtemp(prefix="fedmed-grade-"))
    (scratch / "work").mkdir()
    (scratch / "results").mkdir()
    manager = AsyncKernelManager(kernel_name=KERNEL_NAME)
    # IPC sockets in a private folder: the kernel opens no TCP port.
    manager.transport = "ipc"
    manager.ip = str(scratch / "results" / "kernel")
    await manager.start_kernel(cwd=str(scratch / "work"))
    return KernelSlot(scratch, manager)


async def _discard_slot(slot: KernelSlot) -> None:
    try:
        if slot.manager.has_kernel:
            await slot.manager.shutdown_kernel(now=True)
    except Exception as error:  # noqa: BLE001 - a kernel that is already gone needs no shutdown
        logger.warning("could not shut down the kernel in %s: %s", slot.scratch, error)
    shutil.rmtree(slot.scratch, ignore_errors=True)


class KernelSlots:
    """Fresh kernels for one process, each started one submission ahead.

    Starting a kernel takes about half a second of interpreter start-up.
    :meth:`take` hands out the kernel started during the previous submission
    and launches the next one, so that start-up overlaps the current
    submission's run. Every kernel serves one submission and is then killed.
    """

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.spare: KernelSlot | None = None

    def take(self) -> KernelSlot:
        """Return a fresh kernel slot and launch the next one in the background."""
        slot, self.spare = self.spare, None
        if slot is not None and not self.loop.run_until_complete(slot.manager.is_alive()):
            self.loop.run_until_complete(_discard_slot(slot))
            slot = None
        if slot is None:
            slot = self.loop.run_until_complete(_launch_slot())
        self.spare = self.loop.run_until_complete(_launch_slot())
        return slot

    def release(self, slot: KernelSlot) -> None:
        """Kill the slot's kernel and delete its folders."""
        self.loop.run_until_complete(_discard_slot(slot))

    def close(self) -> None:
        """Kill the spare kernel and close the event loop."""
        if self.spare is not None:
            self.loop.run_until_complete(_discard_slot(self.spare))
            self.spare = None
        self.loop.close()


_SLOTS: KernelSlots | None = None


def kernel_slots() -> KernelSlots:
    """Return this process's kernel slots, created on first use and closed when the process exits."""
    global _SLOTS
    # A forked worker inherits its parent's slots; their kernels belong to the parent.
    if _SLOTS is None or _SLOTS.pid != os.getpid():
        _SLOTS = KernelSlots()
        # multiprocessing runs finalizers with an exit priority when a worker or the main process exits.
        Finalize(_SLOTS, _SLOTS.close, exitpriority=10)
    return _SLOTS


class LimitedClient(NotebookClient):
    """An nbclient client that caps kept output and remembers which cells timed out."""

    def __init__(self, *args, output_bytes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.output_budget = output_bytes
        self.output_used = 0
        self.output_limited = False
        self.cell_output_used = 0
        self.cell_messages_over_budget = 0
        self.output_interrupted_cells: list[str] = []
        self.timed_out_cells: list[str] = []
        # Seconds each timed-out cell was allowed, which is less than the cell limit near the total limit.
        self.cell_timeouts: dict[str, float] = {}

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        self.output_used += size
        self.cell_output_used += size
        if self.output_used <= self.output_budget:
            return super().output(outs, msg, display_id, cell_index)
        self.output_limited = True
        if self.cell_output_used > self.output_budget:
            self.cell_messages_over_budget += 1
            # A cell that keeps printing past the budget is a flood: stop it
            # like a timeout would. One oversized print is only dropped,
            # because the cell has usually finished by the time it arrives.
            if self.cell_messages_over_budget == FLOOD_MESSAGES:
                self.output_interrupted_cells.append(self.nb.cells[cell_index].get("id", "?"))
                self._interrupt_now()
        return None

    def _interrupt_now(self) -> None:
        """Send SIGINT to the kernel before this output handler returns.

        nbclient sends the next cell only after this cell's output is
        handled, so the signal reaches this cell or an idle kernel, which
        ignores it, never the next cell. An interrupt scheduled on the event
        loop could arrive after the next cell has started.
        """
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)

    async def _async_handle_timeout(self, timeout, cell=None):
        if cell is not None:
            self.timed_out_cells.append(cell.get("id", "?"))
            self.cell_timeouts[cell.get("id", "?")] = float(timeout)
        return await super()._async_handle_timeout(timeout, cell)


def read_records(results_path: Path, token: str) -> dict[str, list[dict]]:
    """Return the result records carrying ``token``, grouped by test cell id."""
    records: dict[str, list[dict]] = {}
    if not results_path.is_file():
        return records
    for line in results_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("token") == token and isinstance(record.get("cell"), str):
            records.setdefault(record["cell"], []).append(record)
    return records


def _has_memory_error(cell) -> bool:
    return any(output.get("output_type") == "error" and output.get("ename") == "MemoryError"
               for output in cell.get("outputs", []))


async def _run_cells(client: LimitedClient, notebook, limits: Limits, report: ExecutionReport) -> None:
    start = time.monotonic()
    await client.async_start_new_kernel_client()
    try:
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            remaining = limits.total_timeout - (time.monotonic() - start)
            if remaining <= 0:
                report.total_timeout_at = cell.id
                return
            client.timeout = max(1, int(min(limits.cell_timeout, remaining)))
            client.cell_output_used = 0
            client.cell_messages_over_budget = 0
            try:
                await asyncio.wait_for(client.async_execute_cell(cell, index),
                                       timeout=client.timeout + KILL_GRACE_SECONDS + client.iopub_timeout)
            except DeadKernelError:
                report.kernel_died_at = cell.id
                return
            except asyncio.TimeoutError:
                # The kernel ignored the interrupt; releasing the slot kills it.
                report.total_timeout_at = cell.id
                report.timed_out_cells.append(cell.id)
                report.cell_timeouts.setdefault(cell.id, float(client.timeout))
                return
            report.completed_cells.add(cell.id)
            if _has_memory_error(cell):
                report.memory_error_cells.append(cell.id)
    finally:
        client.kc.stop_channels()


def execute(notebook, slot: KernelSlot, slots: KernelSlots, results_path: Path, token: str,
            limits: Limits) -> ExecutionReport:
    """Run ``notebook`` cell by cell in the slot's fresh kernel.

    Timeouts, a dead kernel and output floods are recorded in the returned
    report, not raised. A kernel that fails to start raises. The caller
    releases the slot afterwards.
    """
    report = ExecutionReport()
    client = LimitedClient(
        notebook,
        km=slot.manager,
        kernel_name=KERNEL_NAME,
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "TimeoutError", "evalue": f"cell interrupted after {limits.cell_timeout:g} s"},
        record_timing=False,
        shutdown_kernel="immediate",
        iopub_timeout=2,
        output_bytes=limits.output_bytes,
        resources={"metadata": {"path": str(slot.work_dir)}},
    )
    start = time.monotonic()
    slots.loop.run_until_complete(_run_cells(client, notebook, limits, report))
    report.seconds = time.monotonic() - start
    report.timed_out_cells.extend(client.timed_out_cells)
    report.cell_timeouts = {**client.cell_timeouts, **report.cell_timeouts}
    report.output_limited = client.output_limited
    report.output_interrupted_cells = list(client.output_interrupted_cells)
    report.records = read_records(results_path, token)
    return report

"""Make `accelerate launch --cpu --num_processes N` start N processes.

accelerate 1.x hands a `--cpu` launch with several processes to MPI (`mpirun`, given `--mpirun_hostfile`);
without MPI it starts one process and sets MASTER_ADDR/MASTER_PORT as if there were more, so a user who
asked for two CPU processes silently trains alone. A training command calls `relaunch_cpu_workers()`
first: when it finds itself in that situation it reads the requested number of processes from the
`accelerate launch` command line that started it (with accelerate's own argument parser) and starts that
many copies of itself with PyTorch's elastic launcher (`torch.distributed.run`, the launcher behind
`accelerate launch --multi_gpu`). Each copy sees RANK/WORLD_SIZE, and `Accelerator(cpu=True)` then joins
them with gloo (accelerate's MULTI_CPU mode). Nothing here runs under MPI, torchrun or a GPU launch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

Value = TypeVar("Value")

# Environment variables that say this process already belongs to a launched group.
_GROUP_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RELAUNCHED = "APPRENTICE_CPU_WORKERS"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def requested_cpu_processes(launch_argv: list[str]) -> int:
    """The `--num_processes` of an `accelerate launch --cpu ...` command line (1 when not a CPU launch)."""
    starts = [index for index, part in enumerate(launch_argv) if part.endswith(("launch", ".launch"))]
    if not starts:
        return 1
    from accelerate.commands.launch import launch_command_parser

    arguments = launch_argv[starts[0] + 1 :]
    parsed, _ = launch_command_parser().parse_known_args(arguments)
    if not parsed.cpu or parsed.num_processes is None:
        return 1
    return int(parsed.num_processes)


def _launcher_argv() -> list[str]:
    """The command line of the process that started this one (`accelerate launch ...`), or [] if unknown."""
    try:
        import psutil

        return list(psutil.Process(os.getppid()).cmdline())
    except Exception:  # a parent we cannot read is simply not an accelerate launcher
        return []


def relaunch_cpu_workers() -> int | None:
    """Start the missing CPU processes of an `accelerate launch --cpu` run; their exit status, or None.

    None means "carry on in this process": not started by `accelerate launch --cpu`, asked for one
    process, or already one of a launched group. Otherwise the caller must exit with the returned status.
    """
    environment = os.environ
    if not _truthy(environment.get("ACCELERATE_USE_CPU")) or "MASTER_ADDR" not in environment:
        return None
    if _RELAUNCHED in environment or any(name in environment for name in _GROUP_VARIABLES):
        return None
    processes = requested_cpu_processes(_launcher_argv())
    if processes < 2:
        return None
    from torch.distributed.run import get_args_parser, run

    # The same interpreter and arguments this process was started with (`-m apprentice ...` included).
    command = [sys.executable, *sys.orig_argv[1:]]
    arguments = get_args_parser().parse_args(
        [
            "--nnodes=1",
            f"--nproc-per-node={processes}",
            f"--master-addr={environment['MASTER_ADDR']}",
            f"--master-port={environment.get('MASTER_PORT', '29500')}",
            "--no-python",
            *command,
        ]
    )
    os.environ[_RELAUNCHED] = str(processes)
    try:
        run(arguments)
    except Exception as error:  # torch's ChildFailedError carries the failing rank's report
        print(f"error: a CPU training process failed: {error}", file=sys.stderr)
        return 1
    return 0


def from_main_process(make: Callable[[], Value]) -> Value:
    """`make()` run by the main process alone and its result handed to every process of the launched group
    (one run folder for all of them); in a single process, just `make()`."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()
    if state.num_processes == 1:
        return make()
    box = [make() if state.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    return box[0]  # type: ignore[return-value]

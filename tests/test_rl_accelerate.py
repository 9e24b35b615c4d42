"""Two CPU processes under `accelerate launch --cpu` see different prompts yet end with identical parameters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from apprentice.launcher import requested_cpu_processes

TESTS = Path(__file__).parent


def test_two_process_training_ends_with_identical_parameters(tiny_model: Path, tmp_path: Path) -> None:
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [
        str(accelerate),
        "launch",
        "--cpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(TESTS / "rl_ddp_worker.py"),
        str(tiny_model),
        str(tmp_path),
    ]
    env = os.environ | {"PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    for algorithm in ("grpo", "ppo"):
        first = torch.load(tmp_path / f"{algorithm}-rank0.pt")
        second = torch.load(tmp_path / f"{algorithm}-rank1.pt")
        assert first["step1_prompts"] != second["step1_prompts"]  # each process sampled its own prompts
        assert first["state"].keys() == second["state"].keys()
        for name, value in first["state"].items():
            assert torch.equal(value, second["state"][name]), f"{algorithm}: {name} differs between processes"
        # And training did something: the saved policy differs from the starting one.
        from apprentice.models import load_policy

        start = load_policy(str(tiny_model))[0].state_dict()
        trained = {name.removeprefix("policy."): value for name, value in first["state"].items()}
        assert any(not torch.equal(start[name], trained[name]) for name in start)


def test_requested_cpu_processes_reads_the_accelerate_command_line() -> None:
    launch = ["/venv/bin/python", "/venv/bin/accelerate", "launch"]
    assert requested_cpu_processes([*launch, "--cpu", "--num_processes", "2", "-m", "apprentice", "policy"]) == 2
    assert requested_cpu_processes([*launch, "--num_processes=3", "--cpu", "train.py", "--cpu"]) == 3
    assert requested_cpu_processes([*launch, "--multi_gpu", "--num_processes", "2", "train.py"]) == 1  # torchrun's job
    assert requested_cpu_processes([*launch, "--cpu", "train.py"]) == 1
    assert requested_cpu_processes(["/usr/bin/python", "train.py", "--cpu", "--num_processes", "2"]) == 1

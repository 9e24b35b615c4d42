"""Under `accelerate launch --cpu --num_processes 2`: train GRPO and PPO, save each rank's parameters."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from apprentice.launcher import relaunch_cpu_workers
from apprentice.rl.config import build_config
from apprentice.rl.grpo import train_grpo
from apprentice.rl.ppo import train_ppo
from apprentice.rl.rewards import CallableReward
from rl_toy import PROMPTS, letter_fraction


def main(model: str, out: Path) -> None:
    reward = CallableReward(letter_fraction, "rl_toy:letter_fraction")
    common = {"steps": 2, "prompts_per_step": 2, "max_new_tokens": 6, "learning_rate": 1e-2, "tensorboard": False}
    # GRPO's 8 completions per process in micro-batches of 3, 3 and 2: the first two backward passes skip
    # DDP's all-reduce (no_sync) and the last one must reduce their sum, or the processes drift apart.
    common["micro_batch_size"] = 3
    for algorithm, train in (("grpo", train_grpo), ("ppo", train_ppo)):
        config = build_config(algorithm, common | {"output_dir": out / algorithm})
        result = train(config, model, PROMPTS, reward, show_progress=False)
        rank = result.run.accelerator.process_index
        state = {name: value.detach().cpu() for name, value in result.run.unwrapped.state_dict().items()}
        indices = result.run.batch_indices(len(PROMPTS), config.prompts_per_step, 1)  # type: ignore[union-attr]
        torch.save({"state": state, "step1_prompts": indices}, out / f"{algorithm}-rank{rank}.pt")


if __name__ == "__main__":
    # What `apprentice policy train` does first: start the second CPU process accelerate did not.
    if (status := relaunch_cpu_workers()) is not None:
        sys.exit(status)
    main(sys.argv[1], Path(sys.argv[2]))

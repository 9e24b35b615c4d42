"""What every algorithm's training loop shares: models under `accelerate`, the optimizer step with its
guard rails, checkpoints and resume, logging and progress. The loops themselves live in one file per
algorithm and read top to bottom; this module is the plumbing around them.

Scale comes from `accelerate` (DDP, FSDP, DeepSpeed through `accelerate launch` and a config file), not
from code of ours. Each process samples its own share of prompts; gradients are averaged by DDP, so
every process ends with the same parameters. The learning-rate scheduler is stepped by us, not by
accelerate (which would step it once per process), so the schedule is the same on 1 or N processes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import get_scheduler

from apprentice.errors import ApprenticeError
from apprentice.files import shareable
from apprentice.pace import Pace
from apprentice.precision import bf16_autocast, uses_bf16
from apprentice.process_memory import large_blocks_in_heap, release_freed_memory
from apprentice.rl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from apprentice.rl.config import POLICY_FOLDER, OfflineConfig, OnlineConfig
from apprentice.rl.core import over_kl_budget
from apprentice.rl.metrics import RunLog

RunConfig = OnlineConfig | OfflineConfig


@dataclass(frozen=True)
class TrainResult:
    policy_path: Path
    metrics: dict[str, float]  # the last step's, averaged over processes
    run: TrainingRun  # the finished run, for inspection (models, optimizer, accelerator)


class TrainingDiverged(ApprenticeError):
    """The loss or gradient went non-finite or exploded; the run stopped before applying that step."""


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout off everywhere: RL ratios compare two forward passes that must see the same network."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    config = getattr(model, "config", None)
    for name in ("attention_dropout", "hidden_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout"):
        if config is not None and isinstance(getattr(config, name, None), float):
            setattr(config, name, 0.0)


def load_models(
    policy_name: str, *, lora_rank: int, lora_alpha: int, need_reference: bool, reference_name: str | None = None
) -> tuple[torch.nn.Module, Any, torch.nn.Module | None]:
    """The trainable policy, its tokenizer, and a frozen reference (None with LoRA or when not needed).

    The reference is the starting policy unless `reference_name` names another model (same tokenizer).
    """
    from apprentice.models import load_policy

    policy, tokenizer = load_policy(policy_name)
    disable_dropout(policy)
    reference = None
    if lora_rank > 0:
        from peft import LoraConfig

        lora = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules="all-linear")
        policy = with_adapter(policy, lora)
        if reference_name is not None and reference_name != policy_name:
            raise ApprenticeError("with LoRA the reference is the base policy itself; drop the separate reference")
    elif need_reference:
        reference, _ = load_policy(reference_name or policy_name)
        disable_dropout(reference)
        reference.requires_grad_(False)
    return policy, tokenizer, reference


def with_adapter(model: torch.nn.Module, lora: Any) -> Any:
    """The model under a new LoRA adapter of config `lora` (peft's `get_peft_model`)."""
    from peft import get_peft_model

    with warnings.catch_warnings():  # peft still asks transformers a question it has renamed
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        return get_peft_model(model, lora)


def store_frozen_linears_in_bf16(model: torch.nn.Module) -> None:
    """Under a LoRA adapter, the frozen linear weights in bfloat16 (embeddings, norms and head stay float32).

    bf16 autocast would cast them at every product anyway; stored so, they take half the memory and the
    casts go. In a LoRA step of the demo's shape on the 2-core AMX machine, the update took 8.6 s against
    9.5 s, the log-prob passes 2.6 against 3.3 s, and the peak fell from 2.70 to 2.36 GiB. The trained
    policy is merged into the float32 weights read again from disk (`TrainingRun.merged_policy`).
    """
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            if isinstance(base, torch.nn.Linear):
                base.to(torch.bfloat16)


def parameter_groups(model: torch.nn.Module, config: RunConfig) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: a value head (PPO) may learn faster than the network under it."""
    trainable = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    scale = getattr(config, "value_lr_scale", 1.0)
    head = [parameter for name, parameter in trainable if name.startswith("value_head.")]
    rest = [parameter for name, parameter in trainable if not name.startswith("value_head.")]
    if scale == 1.0 or not head:
        return [{"params": rest + head}]
    return [{"params": rest}, {"params": head, "lr": config.learning_rate * scale}]


def fused_adam_supported(parameters: Sequence[torch.nn.Parameter], device: torch.device) -> bool:
    """Whether AdamW may run as one fused kernel over all parameters (CPU and CUDA, floating point).

    The default on the CPU is a Python loop of about ten elementwise ops per parameter tensor, each a pass
    over memory: for a 135M model that loop took longer than the forward and backward passes of a
    GRPO update. The fused kernel does the same arithmetic in one pass per tensor.
    """
    return device.type in ("cpu", "cuda") and all(parameter.is_floating_point() for parameter in parameters)


def use_cpu() -> bool:
    """Train on the CPU when there is no GPU: then two processes under `accelerate launch --multi_gpu` use gloo."""
    return not torch.cuda.is_available()


def distributed_state() -> PartialState:
    """This process's place among the launched ones (initialised the same way the Accelerator will be)."""
    return PartialState(cpu=use_cpu())


class TrainingRun:
    """One training run: accelerator, model, optimizer, schedule, checkpoints, logs, progress."""

    def __init__(
        self,
        config: RunConfig,
        policy_name: str,
        *,
        total_steps: int,
        updates_per_step: int,
        need_reference: bool,
        wrap_policy: Any = None,
        reference_name: str | None = None,
        resume: bool = False,
        show_progress: bool = True,
    ) -> None:
        self.config = config
        self.total_steps = total_steps
        self.accelerator = Accelerator(cpu=use_cpu())
        set_seed(config.seed)  # the same initialisation (e.g. a value head) on every process
        policy, self.tokenizer, reference = load_models(
            policy_name,
            lora_rank=config.lora_rank,
            lora_alpha=config.lora_alpha,
            need_reference=need_reference,
            reference_name=reference_name,
        )
        self.uses_lora = config.lora_rank > 0
        self.policy_name = policy_name
        # bf16 products, float32 weights and optimizer state (precision); accelerate's own mixed precision
        # is process-wide state, so the autocast is ours, around each forward pass (`autocast`).
        self.bf16 = uses_bf16(config.mixed_precision, self.accelerator.device)
        if self.uses_lora and self.bf16:
            store_frozen_linears_in_bf16(policy)
        model = wrap_policy(policy) if wrap_policy is not None else policy
        # Always in eval mode: dropout off, and generate() and the update see the same network.
        model.eval()
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(
            parameter_groups(model, config),
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            eps=config.adam_eps,
            fused=fused_adam_supported(trainable, self.accelerator.device),
        )
        self.scheduler = get_scheduler(
            config.lr_schedule,
            optimizer,
            num_warmup_steps=config.warmup_steps,
            num_training_steps=total_steps * updates_per_step,
        )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.reference = reference.to(self.accelerator.device) if reference is not None else None
        self.trainable = trainable
        self._pending_loss: torch.Tensor | None = None  # micro-batch losses backpropagated before the last
        self._accumulating = False  # inside micro_batch(last=False)
        self.start_step = 0
        self._kl_history: list[float] = []  # per-step mean KL, for the kl_budget stop
        self.over_kl_budget = False
        self.training_state: dict[str, Any] = {}
        checkpoint = latest_checkpoint(config.output_dir) if resume else None
        if resume and checkpoint is None:
            raise ApprenticeError(
                f"--resume: no checkpoint under {config.output_dir / 'checkpoints'}; start a fresh run"
            )
        if checkpoint is not None:
            self.training_state = load_checkpoint(
                self.accelerator, checkpoint, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler
            )
            self.start_step = int(self.training_state["step"])
        else:
            # Different samples on each process; resumed runs restore their RNG from the checkpoint.
            set_seed(config.seed + self.accelerator.process_index)
        self.last_checkpoint = checkpoint
        self.log = RunLog(
            config.output_dir,
            enabled=self.accelerator.is_main_process,
            tensorboard=config.tensorboard,
            resumed_step=self.start_step,
        )
        self.timings: dict[str, float] = {}
        self._orders: dict[int, list[int]] = {}
        self.step = self.start_step
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not (show_progress and self.accelerator.is_main_process),
        )
        self._task = self._progress.add_task(
            type(config).__name__.removesuffix("Config"), total=total_steps, completed=self.start_step, status=""
        )
        self._pace = Pace(
            f"{type(config).__name__.removesuffix('Config')} training",
            total_steps,
            start=self.start_step,
            enabled=show_progress and self.accelerator.is_main_process,
            console=self._progress.console,
            hint="fewer steps, or the time_limit_minutes option, shorten it",
        )

    # -- models ---------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Around a forward pass (not its backward): bf16 products when the run's mixed precision says so."""
        return bf16_autocast(self.device, self.bf16)

    @property
    def unwrapped(self) -> Any:
        return self.accelerator.unwrap_model(self.model)

    @property
    def policy(self) -> Any:
        """The bare causal LM (under the value-head wrapper, if any), for `generate`."""
        unwrapped = self.unwrapped
        return getattr(unwrapped, "policy", unwrapped)

    # -- data ---------------------------------------------------------------------------------

    def batch_indices(self, dataset_size: int, per_process: int, step: int) -> list[int]:
        """This process's items for `step`: a seeded shuffle per epoch, so the step alone is the data position."""
        global_batch = per_process * self.accelerator.num_processes
        start = (step - 1) * global_batch + self.accelerator.process_index * per_process
        indices = []
        for item in range(start, start + per_process):
            epoch, position = divmod(item, dataset_size)
            if epoch not in self._orders:
                generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
                self._orders[epoch] = torch.randperm(dataset_size, generator=generator).tolist()
            indices.append(self._orders[epoch][position])
        return indices

    # -- the loop -------------------------------------------------------------------------------

    def steps(self) -> Iterator[int]:
        started = time.monotonic()
        limit = getattr(self.config, "time_limit_minutes", None)
        # a step's vocabulary-sized tensors reuse the space the step freed (process_memory)
        with self._progress, large_blocks_in_heap():
            for step in range(self.start_step + 1, self.total_steps + 1):
                self.step = step
                self.timings = {}
                yield step
                release_freed_memory()  # what the step freed, before the next one allocates (process_memory)
                # All processes must stop at the same step, or one waits forever in the next all-reduce:
                # the KL budget is judged on metrics already averaged over processes, the clock is reduced.
                if self.over_kl_budget or (limit is not None and self._any_process_out_of_time(started, limit)):
                    if self.step % self.config.checkpoint_every != 0:
                        self.save_checkpoint()
                    break

    def _any_process_out_of_time(self, started: float, limit_minutes: float) -> bool:
        out_of_time = time.monotonic() - started > limit_minutes * 60
        flag = torch.tensor([1.0 if out_of_time else 0.0], device=self.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started

    def optimize(self, loss: torch.Tensor) -> float:
        """Backward, clip, step; stops the run (nothing applied) on a non-finite or exploding loss."""
        self.backward(loss)
        return self.step_optimizer()

    @contextlib.contextmanager
    def micro_batch(self, *, last: bool) -> Iterator[None]:
        """Around one micro-batch's forward and `backward`: all but the last only add to the local gradient.

        Inside, DDP/FSDP skip their gradient all-reduce (DDP decides in the forward, hence the forward
        belongs inside too) and DeepSpeed its step boundary; the last micro-batch's backward then reduces
        the accumulated sum once. `sync_gradients` goes back on after, because accelerate's optimizer
        wrapper skips step and zero_grad while it is off.
        """
        if last:
            yield
            return
        self._accumulating = True
        self.accelerator.sync_gradients = False
        try:
            with self.accelerator.no_sync(self.model):
                yield
        finally:
            self._accumulating = False
            self.accelerator.sync_gradients = True

    def backward(self, loss: torch.Tensor) -> None:
        """Add a loss's gradient; `step_optimizer` applies the sum once the last micro-batch's came.

        Micro-batch losses (each inside `micro_batch`) must add up to the batch's loss
        (core.aggregate_chunk_token_loss). The guard judges their sum, as `optimize` judges one whole loss,
        before the last backward (under DeepSpeed that backward steps too): a bad micro-batch stops the
        run with nothing applied.
        """
        total = loss.detach() if self._pending_loss is None else self._pending_loss + loss.detach()
        if self._accumulating:
            self._pending_loss = total
            self.accelerator.backward(loss)
            return
        self._pending_loss = None
        self._guard("loss", total)
        self.accelerator.backward(loss)

    def step_optimizer(self) -> float:
        """Clip the accumulated gradient and step; the gradient-norm guard stops the run before applying it."""
        if self._pending_loss is not None:
            raise RuntimeError("step_optimizer() before the last micro-batch's backward")
        grad_norm = self.accelerator.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        self._guard("gradient norm", torch.as_tensor(grad_norm, device=self.device).detach(), limit=math.inf)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm)

    def _guard(self, what: str, value: torch.Tensor, limit: float | None = None) -> None:
        limit = self.config.max_loss if limit is None else limit
        bad = (~torch.isfinite(value)) | (value.abs() > limit)
        # Every process must agree, or one stops while the others wait for it in the next all-reduce.
        if self.accelerator.reduce(bad.float().reshape(1), reduction="sum").item() > 0:
            self._pending_loss = None
            self.optimizer.zero_grad(set_to_none=True)
            where = (
                f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint yet"
            )
            raise TrainingDiverged(
                f"step {self.step}: the {what} is {value.item():.4g} (not finite or above {limit:g}); stopped before "
                f"applying it, {where}; lower learning_rate (or raise kl_coef) and resume with --resume"
            )

    def end_step(
        self,
        metrics: dict[str, float],
        *,
        samples: tuple[Sequence[str], Sequence[str], Sequence[float]] | None = None,
        sample_every: int = 0,
    ) -> dict[str, float]:
        """Average metrics over processes, log them, show progress, checkpoint when due."""
        metrics = {**metrics, **{f"time/{name}": seconds for name, seconds in self.timings.items()}}
        metrics["lr"] = self.scheduler.get_last_lr()[0]
        keys = sorted(metrics)
        values = torch.tensor([float(metrics[key]) for key in keys], dtype=torch.float64, device=self.device)
        averaged = dict(zip(keys, self.accelerator.reduce(values, reduction="mean").tolist(), strict=True))
        self.log.metrics(self.step, averaged)
        budget = getattr(self.config, "kl_budget", None)
        if budget is not None and "kl" in averaged:
            self._kl_history.append(averaged["kl"])
            self.over_kl_budget = over_kl_budget(self._kl_history, budget, self.config.kl_budget_window)  # type: ignore[union-attr]
        if samples is not None and sample_every and (self.step % sample_every == 0 or self.step == 1):
            self.log.samples(self.step, *samples)
        status = "  ".join(f"{key} {averaged[key]:.3g}" for key in ("reward", "kl", "loss") if key in averaged)
        self._progress.update(self._task, completed=self.step, status=status)
        self._pace.update(self.step, status)
        if self.step % self.config.checkpoint_every == 0 or self.step == self.total_steps:
            self.save_checkpoint()
        return averaged

    def save_checkpoint(self) -> Path:
        self.last_checkpoint = save_checkpoint(
            self.accelerator,
            self.config.output_dir,
            self.step,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            training_state=self.training_state,
            keep=self.config.keep_checkpoints,
        )
        return self.last_checkpoint

    def merged_policy(self) -> Any:
        """A LoRA policy as one plain model, its adapter merged into float32 base weights.

        Where the run stored the frozen weights in bf16, the base is read again from `policy_name`, so
        the saved policy is the float32 starting point plus the adapter, not a rounded copy of it.
        """
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        from apprentice.models import load_policy

        if not self.bf16:
            return copy.deepcopy(self.policy).merge_and_unload()
        base, _ = load_policy(self.policy_name)
        fresh = with_adapter(base, self.policy.peft_config["default"])
        set_peft_model_state_dict(fresh, get_peft_model_state_dict(self.policy))
        return fresh.merge_and_unload()

    def finish(self) -> Path:
        """Save the trained policy as a folder `transformers` loads as is (LoRA merged); returns it."""
        self.log.close()
        target = self.config.output_dir / POLICY_FOLDER
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            policy = self.merged_policy() if self.uses_lora else self.policy
            staging = Path(tempfile.mkdtemp(prefix=".policy-", dir=self.config.output_dir))
            try:
                policy.save_pretrained(staging, safe_serialization=True)
                self.tokenizer.save_pretrained(staging)
                value_head = getattr(self.unwrapped, "value_head", None)
                if value_head is not None:
                    torch.save(value_head.state_dict(), staging / "value_head.pt")
                shareable(staging)
                if target.exists():
                    shutil.rmtree(target)
                staging.rename(target)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return target

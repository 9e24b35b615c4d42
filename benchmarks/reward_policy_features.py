"""Does the policy's own backbone give the loop's reward heads better features than MiniLM from ~100 labels?

The setting, the labels and the measure are `reward_features.py`'s (its functions are reused): the default
policy's 4 candidates to a seeded sample of the bundled prompts, the composite gold, simulated labels
with 25% flips (they agree with the gold order 75% of the time), 5 bootstrap linear heads, accuracy
against the GOLD on every within-prompt pair of the 30% held-out prompts, per seed a new split and new
labels (the same draws as `reward_features.py`). Added here, from one pass of the policy's backbone
(SmolLM2-135M-Instruct, `RewardModel.from_backbone("default")`) over prompt + response in its chat
template, as the loop's `reward_model = "default"` reads them:
- `smol:last`: the last token's final hidden state, what a classification head on the policy reads (the
  loop's `head-input` kind on that backbone) (576);
- `smol:resp-mean`: the final hidden states averaged over the response's tokens, read after the prompt;
- `smol:resp-layers`: the same averaged over every layer too (the layer average that helped MiniLM);
- `a+b`: two tables side by side (each head standardizes every feature while fitting).
`@x` is the heads' l2 on standardized features; `prompt-aware@10` is the loop's default reward.

Measured on 2 shared CPU cores (8 jobs beside it): 96 prompts, 381 responses, 568 within-prompt pairs,
29 held-out prompts a seed, 10 seeds; 36 min to generate the candidates, 7 min for MiniLM's features,
13 min for SmolLM2's, 71 s for the fits (all cached in --folder).

    PYTHONPATH=src .venv/bin/python benchmarks/reward_policy_features.py --prompts 96

Gold accuracy on held-out pairs, mean over 10 seeds (95% t-interval):

| features | 50 labels | 100 labels | 200 labels |
| --- | --- | --- | --- |
| prompt-aware@10 | 0.584 (0.539-0.628) | 0.578 (0.547-0.608) | 0.612 (0.576-0.648) |
| smol:last@1 | 0.480 (0.458-0.502) | 0.479 (0.438-0.520) | 0.510 (0.489-0.531) |
| smol:last@10 | 0.481 (0.466-0.497) | 0.482 (0.443-0.522) | 0.513 (0.488-0.537) |
| smol:last@100 | 0.482 (0.460-0.504) | 0.473 (0.439-0.508) | 0.516 (0.483-0.550) |
| smol:resp-mean@10 | 0.516 (0.476-0.555) | 0.513 (0.469-0.558) | 0.518 (0.490-0.545) |
| smol:resp-layers@10 | 0.531 (0.501-0.562) | 0.530 (0.496-0.563) | 0.546 (0.521-0.571) |
| smol:resp-layers@100 | 0.531 (0.499-0.564) | 0.531 (0.498-0.565) | 0.547 (0.519-0.575) |
| prompt-aware+smol:last@10 | 0.530 (0.499-0.561) | 0.528 (0.484-0.572) | 0.573 (0.528-0.618) |
| prompt-aware+smol:resp-layers@10 | 0.567 (0.522-0.611) | 0.574 (0.537-0.610) | 0.599 (0.562-0.637) |
| prompt-aware+smol:resp-layers@30 | 0.559 (0.507-0.612) | 0.575 (0.542-0.609) | 0.607 (0.572-0.642) |

On the same cache, `reward_features.py --prompts 96 --labels 50 100 200` with other l2 and head counts
(mean ± sd over the 10 seeds): prompt-aware@3 0.573±0.044 and @30 0.580±0.033 at 100 labels; 1 head
0.594±0.047 (@10) and 0.595±0.041 (@100), 16 heads 0.591±0.044 and 0.589±0.043.

Reading. The policy's backbone is no help: its last token is at chance (a classification head on it
needs the backbone tuned, which a few hundred labels cannot do), the response's in-context mean reaches
0.51-0.55, and adding either to MiniLM's features only dilutes them. No l2 or head count moves MiniLM's
features off 0.57-0.60 at 100 labels on this pool (0.63 on `reward_features.py`'s 192 prompts): the
0.65 the loop wants at 100 labels is not reached by any frozen-feature head measured here. Not measured:
DPO's implicit reward and a LoRA reward head (each needs the policy trained per seed and label count,
hours on this machine).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apprentice.reward.model import RewardModel
from apprentice.simulate import AnnotatorProfile, reachable_temperature
from reward_features import FLIP_RATE, Experiment, candidates, features_and_gold, simulated_labels, t_interval

MAX_LENGTH = 256  # the loop's reward max_length
DEFAULT_SETS = [
    "prompt-aware@10",
    "smol:last@1",
    "smol:last@10",
    "smol:last@100",
    "smol:resp-mean@10",
    "smol:resp-layers@10",
    "smol:resp-layers@100",
    "prompt-aware+smol:last@10",
    "prompt-aware+smol:resp-layers@10",
    "prompt-aware+smol:resp-layers@30",
]


def policy_features(folder: Path, rows: list[dict[str, Any]], batch_size: int = 8) -> dict[str, torch.Tensor]:
    """The policy backbone's hidden states for every candidate read after its prompt, in one pass (cached)."""
    path = folder / f"policy-features-{len(rows)}.pt"
    if path.exists():
        cached: dict[str, torch.Tensor] = torch.load(path)
        return cached
    started = time.perf_counter()
    model = RewardModel.from_backbone("default", max_length=MAX_LENGTH)
    tokenizer, base = model.tokenizer, model.model.base_model
    encoded = []  # (ids, where the response starts)
    for row in rows:
        prompt_text = tokenizer.apply_chat_template(row["messages"], tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        for response in row["responses"]:
            ids = model.encode(row["messages"], response).input_ids  # as the loop's head-input kind reads it
            start = len(prompt_ids) if ids[: len(prompt_ids)] == prompt_ids else 0
            encoded.append((ids, start))
    order = sorted(range(len(encoded)), key=lambda index: -len(encoded[index][0]))
    hidden = base.config.hidden_size
    table = {name: torch.zeros((len(encoded), hidden)) for name in ("smol:last", "smol:resp-mean", "smol:resp-layers")}
    with torch.no_grad():
        for begin in range(0, len(order), batch_size):
            chunk = order[begin : begin + batch_size]
            width = max(len(encoded[index][0]) for index in chunk)
            input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            response = torch.zeros((len(chunk), width, 1))
            for row, index in enumerate(chunk):
                ids, start = encoded[index]
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention[row, : len(ids)] = 1
                response[row, start : len(ids)] = 1.0
            output = base(input_ids=input_ids, attention_mask=attention, output_hidden_states=True)
            lengths = attention.sum(1)
            count = response.sum(1).clamp_min(1.0)
            table["smol:last"][chunk] = output.last_hidden_state[torch.arange(len(chunk)), lengths - 1]
            table["smol:resp-mean"][chunk] = (output.last_hidden_state * response).sum(1) / count
            layers = torch.stack([(states * response).sum(1) / count for states in output.hidden_states[1:]])
            table["smol:resp-layers"][chunk] = layers.mean(0)
    print(f"policy features: {time.perf_counter() - started:.0f} s", flush=True)
    torch.save(table, path)
    return table


class PolicyExperiment(Experiment):
    def __init__(self, rows: list[dict[str, Any]], table: dict[str, Any], extra: dict[str, torch.Tensor]) -> None:
        super().__init__(rows, table, heads=5)
        self.extra = {name: values.double() for name, values in extra.items()}

    def features(self, name: str, train_texts: np.ndarray) -> torch.Tensor:
        if "+" in name:
            return torch.cat([self.features(part, train_texts) for part in name.split("+")], 1)
        if name in self.extra:
            return self.extra[name]
        return super().features(name, train_texts)


def interval(values: list[float]) -> str:
    """Mean and a 95% t-interval over seeds."""
    estimate = t_interval(values)
    if estimate.low is None or estimate.high is None:
        return f"{estimate.mean:.3f}"
    return f"{estimate.mean:.3f} ({estimate.low:.3f}-{estimate.high:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("benchmarks/results/reward-features"))
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--labels", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--sets", nargs="+", default=DEFAULT_SETS)
    args = parser.parse_args()
    torch.set_num_threads(1)

    started = time.perf_counter()
    rows = [row for row in candidates(args.folder, args.prompts) if len(row["responses"]) >= 2]
    experiment = PolicyExperiment(rows, features_and_gold(args.folder, rows), policy_features(args.folder, rows))
    gold, owner = experiment.gold, experiment.owner
    differences = [gold[a] - gold[b] for pairs in experiment.pairs.values() for a, b in pairs]
    temperature = reachable_temperature(differences, flip_rate=FLIP_RATE)
    annotator = AnnotatorProfile("sim", temperature=temperature, flip_rate=FLIP_RATE)
    seconds = time.perf_counter() - started
    print(f"{len(rows)} prompts, {len(gold)} responses, {len(differences)} pairs; features {seconds:.0f} s")

    results: dict[str, dict[int, list[float]]] = {name: {n: [] for n in args.labels} for name in args.sets}
    agreement, held_out_pairs = [], []
    for seed in range(args.seeds):
        order = list(range(len(rows)))
        random.Random(1000 + seed).shuffle(order)
        cut = round(0.7 * len(rows))
        train_prompts, test_prompts = sorted(order[:cut]), sorted(order[cut:])
        held_out_pairs.append(sum(gold[a] != gold[b] for p in test_prompts for a, b in experiment.pairs[p]))
        train_texts = np.where(np.isin(owner, train_prompts))[0]
        pool = [pair for prompt in train_prompts for pair in experiment.pairs[prompt]]
        tables: dict[str, torch.Tensor] = {}
        for count in args.labels:
            # The same labels as reward_features.py draws.
            chosen, rejected = simulated_labels(pool, count, gold, annotator, random.Random(f"{seed}:{count}"))
            agreement.append(float(np.mean([gold[c] > gold[r] for c, r in zip(chosen, rejected, strict=True)])))
            for name in args.sets:
                base, _, mode = name.partition("@")
                if base not in tables:
                    tables[base] = experiment.features(base, train_texts)
                l2 = float(mode) if mode else 1e-3
                scores = experiment.fit(tables[base], chosen, rejected, l2, seed)
                results[name][count].append(experiment.evaluate(scores, test_prompts)["accuracy"])
        print(f"seed {seed} done, {time.perf_counter() - started:.0f} s", flush=True)

    print(
        f"\nlabels agreeing with the gold order: {np.mean(agreement):.3f}; held-out prompts a seed: "
        f"{len(rows) - cut}, held-out pairs a seed: {min(held_out_pairs)}-{max(held_out_pairs)}; {args.seeds} seeds"
    )
    print("gold accuracy on held-out pairs: mean over seeds (95% t-interval)\n")
    print("| features | " + " | ".join(f"{count} labels" for count in args.labels) + " |")
    print("| --- |" + " --- |" * len(args.labels))
    for name in args.sets:
        print(f"| {name} | " + " | ".join(interval(results[name][count]) for count in args.labels) + " |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

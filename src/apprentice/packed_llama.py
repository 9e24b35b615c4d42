"""A Llama forward for no-grad decoding on the CPU: fused, prepacked products and a few ops a layer.

Why our own forward rather than transformers': on the 2-core CPU a decoding step of the default policy
(SmolLM2-135M, 16 rows, bf16 products on oneDNN's prepacked weights) took 52 ms, of which its 211 linears took
26 ms; the other half went to the Python around them (each layer's modules, hooks and keyword plumbing) and
to the dozen small tensor ops a layer that build masks, norms and rotary embeddings, each costing more to
dispatch than to compute on a handful of rows. This forward computes what `LlamaForCausalLM` computes, with:

- queries, keys and values as one product, and the MLP's gate and up as one (4 products a layer instead of 7),
  each on a weight reordered once for oneDNN (`cpu_inference.PackedLinear`; for a LoRA layer, its merged
  weight);
- each RMSNorm as one `torch.rms_norm`, the rotary embedding applied to queries and keys together, and the
  attention mask built once per forward instead of once per layer;
- attention by `scaled_dot_product_attention` on the KV cache, a single query's heads grouped by the key and
  value head they share rather than the keys repeated for each.

With bf16 products, the precision is that of the policy's forward under bf16 autocast (`precision`): float32
weights, residual stream, norms and rotary embeddings; the products, the MLP's activation, attention and so
the KV cache in bf16. A bf16 cache also halves what each step reads: at a hundred tokens of context, reading
a float32 cache was a fifth of a 16-row step. It serves `decoding.decode` only (prompt pass and steps, through the same
call signature as the model); training, and any model this module does not recognise, use transformers'
forward (`packed_llama_supported`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache, LlamaForCausalLM, PretrainedConfig
from transformers.modeling_outputs import CausalLMOutputWithPast

from apprentice.cpu_inference import (
    PackedLinear,
    compute_dtype,
    computes_one_linear_map,
    effective_weight,
    packed_linears,
    packed_linears_supported,
)
from apprentice.precision import bf16_autocast


def _base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a peft wrapper, or the model itself."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def packed_llama_supported(model: torch.nn.Module, *, bf16: bool = False) -> bool:
    """Whether `PackedLlama` computes this model's forward: a `LlamaForCausalLM` (or a peft adapter on one)
    whose linears are plain or plain-LoRA, where `packed_linears` applies, without attention dropout."""
    base = _base_model(model)
    if not isinstance(base, LlamaForCausalLM) or not packed_linears_supported(model, bf16=bf16):
        return False
    config = base.config
    if getattr(config, "pretraining_tp", 1) != 1 or (base.training and float(config.attention_dropout or 0.0) > 0):
        return False
    layer = base.model.layers[0]
    linears = (
        layer.self_attn.q_proj,
        layer.self_attn.k_proj,
        layer.self_attn.v_proj,
        layer.self_attn.o_proj,
        layer.mlp.gate_proj,
        layer.mlp.up_proj,
        layer.mlp.down_proj,
        base.lm_head,
    )
    return all(computes_one_linear_map(linear) for linear in linears)


@dataclass(frozen=True)
class PackedLayer:
    """One decoder layer's weights, ready for `PackedLlama`."""

    input_norm: torch.Tensor
    query_key_value: PackedLinear
    output: PackedLinear
    post_attention_norm: torch.Tensor
    gate_up: PackedLinear
    down: PackedLinear
    activation: Callable[[torch.Tensor], torch.Tensor]


class PackedLlama:
    """A Llama model's no-grad forward on packed weights, called as the model is by `decoding`.

    The weights are packed at construction, so the model's must not change while this object is used.
    """

    def __init__(self, model: torch.nn.Module, *, bf16: bool = False) -> None:
        base = _base_model(model)
        assert isinstance(base, LlamaForCausalLM)
        self.config: PretrainedConfig = base.config
        self.compute = compute = compute_dtype(bf16)
        attention = base.model.layers[0].self_attn
        self.head_dim = int(attention.head_dim)
        self.heads = int(attention.q_proj.out_features) // self.head_dim
        self.key_value_heads = int(attention.k_proj.out_features) // self.head_dim
        self.scaling = float(attention.scaling)
        self.norm_eps = base.model.norm.variance_epsilon
        self.embed_tokens = base.model.embed_tokens
        self.rotary_emb = base.model.rotary_emb
        self.final_norm = base.model.norm.weight
        self.lm_head = _packed(compute, base.lm_head)
        with torch.no_grad():
            self.layers = [
                PackedLayer(
                    input_norm=layer.input_layernorm.weight,
                    query_key_value=_packed(
                        compute, layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj
                    ),
                    output=_packed(compute, layer.self_attn.o_proj),
                    post_attention_norm=layer.post_attention_layernorm.weight,
                    gate_up=_packed(compute, layer.mlp.gate_proj, layer.mlp.up_proj),
                    down=_packed(compute, layer.mlp.down_proj),
                    activation=layer.mlp.act_fn,
                )
                for layer in base.model.layers
            ]

    @property
    def bf16(self) -> bool:
        return self.compute == torch.bfloat16

    def __call__(
        self,
        *,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        use_cache: bool = True,
    ) -> CausalLMOutputWithPast:
        """Logits `(B, Q, V)` (the last `logits_to_keep` positions when given) for Q new tokens a row, whose
        keys and values are appended to `cache`. `attention_mask` `(B, K)` covers the cache and the new tokens."""
        hidden = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        cos, sin = self.rotary_emb(hidden, position_ids)
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)  # (B, Q, 1, D): broadcast over heads
        allowed = _attention_mask(attention_mask, hidden.shape[1])
        mask = torch.zeros(allowed.shape, dtype=self.compute).masked_fill_(~allowed, float("-inf"))
        for index, layer in enumerate(self.layers):
            attended = self._attention(index, layer, self._norm(hidden, layer.input_norm), cos, sin, mask, cache)
            hidden = hidden + attended
            normed = self._norm(hidden, layer.post_attention_norm)
            gate, up = layer.gate_up(normed, self.compute).chunk(2, dim=-1)
            hidden = hidden + layer.down(layer.activation(gate) * up)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return CausalLMOutputWithPast(logits=self.lm_head(self._norm(hidden, self.final_norm)))

    def _norm(self, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.rms_norm(hidden, (hidden.shape[-1],), weight, self.norm_eps)

    def _attention(
        self,
        index: int,
        layer: PackedLayer,
        normed: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor,
        cache: DynamicCache,
    ) -> torch.Tensor:
        rows, length, _ = normed.shape
        heads, key_value_heads, width = self.heads, self.key_value_heads, self.head_dim
        projected = layer.query_key_value(normed, self.compute).view(rows, length, heads + 2 * key_value_heads, width)
        # rotated in float32 as under autocast (its tables are float32), then kept and cached in `compute`
        rotated = _rotate(projected[:, :, : heads + key_value_heads].float(), cos, sin).to(self.compute)
        queries = rotated[:, :, :heads].transpose(1, 2)  # (B, H, Q, D)
        keys = rotated[:, :, heads:].transpose(1, 2)
        values = projected[:, :, heads + key_value_heads :].transpose(1, 2)
        keys, values = cache.update(keys, values, index)
        groups = heads // key_value_heads
        if length == 1:
            # One query a row: the heads that share a key/value head become that head's G queries.
            grouped = queries.reshape(rows, key_value_heads, groups, width)
            attended = F.scaled_dot_product_attention(grouped, keys, values, attn_mask=mask, scale=self.scaling)
        else:
            keys, values = _repeat_heads(keys, groups), _repeat_heads(values, groups)
            attended = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask, scale=self.scaling)
            attended = attended.transpose(1, 2)
        return layer.output(attended.reshape(rows, length, heads * width))


def _packed(compute: torch.dtype, *linears: torch.nn.Module) -> PackedLinear:
    """The linears' effective weights stacked by output rows, as one packed product."""
    weights, biases = zip(*(effective_weight(linear) or _unsupported(linear) for linear in linears), strict=True)
    no_bias = all(bias is None for bias in biases)
    bias = None if no_bias else torch.cat([_bias_or_zeros(b, w) for b, w in zip(biases, weights, strict=True)])
    return PackedLinear(torch.cat(weights) if len(weights) > 1 else weights[0], bias, compute)


def _bias_or_zeros(bias: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
    return weight.new_zeros(weight.shape[0]) if bias is None else bias


def _unsupported(linear: torch.nn.Module) -> Any:
    raise TypeError(f"PackedLlama cannot pack {type(linear).__name__}; check packed_llama_supported first")


def _rotate(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of `(B, Q, heads, D)` with `(B, Q, 1, D)` tables, as Llama applies it."""
    half = states.shape[-1] // 2
    rotated_half = torch.cat((-states[..., half:], states[..., :half]), dim=-1)
    return states * cos + rotated_half * sin


def _repeat_heads(states: torch.Tensor, groups: int) -> torch.Tensor:
    """Keys or values `(B, KV, K, D)` repeated for each of the `groups` query heads that share them."""
    if groups == 1:
        return states
    rows, heads, length, width = states.shape
    return states[:, :, None].expand(rows, heads, groups, length, width).reshape(rows, heads * groups, length, width)


def _attention_mask(attention_mask: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Which keys each new token sees `(B, 1, Q, K)`: real tokens up to its own position.

    A padding position sees itself, so that its (unused) softmax has something to normalise.
    """
    keys = attention_mask.shape[1]
    real = attention_mask.bool()[:, None, None, :]
    if new_tokens == 1:
        return real
    columns = torch.arange(keys, device=attention_mask.device)
    own_column = columns[keys - new_tokens :, None]  # (Q, 1): each new token's column among the keys
    return (real & (columns <= own_column)) | (columns == own_column)


DecodingModel = Any  # a transformers causal LM, or PackedLlama: both called with the same keywords


@contextmanager
def decoding_model(model: DecodingModel, *, bf16: bool = False) -> Iterator[DecodingModel]:
    """What to call for each forward pass of a decoding run: `PackedLlama` where supported, otherwise the
    model itself with `packed_linears` (and bf16 autocast where bf16 products cannot be packed).

    A `PackedLlama` passed in is used as it is (a caller that decodes several batches packs once)."""
    if isinstance(model, PackedLlama):
        if model.bf16 != bf16:
            raise ValueError(f"this PackedLlama computes with bf16={model.bf16}, but bf16={bf16} was asked")
        yield model
    elif packed_llama_supported(model, bf16=bf16):
        yield PackedLlama(model, bf16=bf16)
    else:
        unpacked_bf16 = bf16 and not packed_linears_supported(model, bf16=True)
        with packed_linears(model, bf16=bf16), bf16_autocast(next(model.parameters()).device, unpacked_bf16):
            yield model

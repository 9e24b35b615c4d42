"""Shared fixtures: a tiny random chat model (no download), and a fresh store on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    import torch

ModuleT = TypeVar("ModuleT", bound="torch.nn.Module")

POSTGRES_URL = os.environ.get("APPRENTICE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tiny_tokenizer() -> object:
    """A word-level tokenizer over a small vocabulary, with SmolLM2's special tokens and chat format."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = (  # noqa: SIM905 - lines of words read better than a 90-item list literal
        "the a an and or but to of in on for with is are was be it this that you i we they he she "
        "good bad great happy sad yes no please thanks hello hi write poem story code explain why how what "
        "user assistant system python list sort number friend help sun moon cat dog tree water love hate "
        "0 1 2 3 4 5 6 7 8 9 . , ! ? : ; ' \" ( ) - \n"
    ).split(" ")
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    vocab["[UNK]"] = len(vocab)
    for word in words:
        if word and word not in vocab:
            vocab[word] = len(vocab)
    for char in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(char, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("\n", behavior="isolated"),
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
        ]
    )
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="[UNK]",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def randomize_weights(model: ModuleT) -> ModuleT:
    """The tiny model with larger random weights (returned for chaining): at its initial scale it repeats one
    token for every prompt, and its logits differ too little between rows for a wrong mask to show."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model


def build_tiny_model_folder(folder: Path, *, seed: int = 0) -> Path:
    """A random 2-layer Llama with the tiny tokenizer, saved as a folder `transformers` loads as is."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)  # type: ignore[attr-defined]
    return folder


@pytest.fixture(autouse=True)
def float32_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mixed_precision = "auto"` resolves to float32 in every test, whatever the machine's hardware, so the
    suite computes the same numbers everywhere; the bf16 paths are tested where a test asks for "bf16"."""
    monkeypatch.setattr("apprentice.precision.fast_bf16", lambda device: False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_folder(tmp_path_factory.mktemp("tiny-model"))


def _fresh_postgres_database() -> tuple[str, str]:
    """A new, empty database on the test server; returns its URL and name."""
    name = f"apprentice_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False), name


def _drop_postgres_database(name: str) -> None:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL: SQLite in a temp folder, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    url, name = _fresh_postgres_database()
    try:
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    from apprentice.store import Store

    opened = Store.open(store_url)
    yield opened
    opened.close()

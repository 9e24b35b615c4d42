"""The README's "Using it" walk on a fresh project: every command of its sh block, in order, exits 0.

The commands are read from README.md itself, so the test breaks when the README and the command line
drift apart. To finish in minutes on a CPU the project's settings name the tiny random model as the
policy and the loop's reward backbone, with small counts, and a few commands get options that shrink
them (fewer steps, shorter answers, one loop round); each such change must find its target in the README,
so none is silently skipped. Judging is done by the simulated annotators the walk itself runs;
`apprentice studio` serves until stopped, so it is started, asked for a page and stopped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

import apprentice
from apprentice.cli import app
from apprentice.studio.security import CHEAP_HASHES_ENV

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
PROMPTS = [
    "write a poem about the sun",
    "explain why the cat is happy",
    "how to sort a list in python",
    "write a story about a dog",
    "what is the moon",
    "say hello to a friend",
    "explain how trees help",
    "write code to sort numbers",
]
HELD_OUT = ["write a poem about the moon", "explain why dogs are good", "say thanks to a friend", "how to help a tree"]
SMALL_SETTINGS = {  # apprentice.toml lines the walk shrinks after `init`: (section key, new value)
    "max_new_tokens": "8",
    "prompts_per_round": "4",
    "labels_per_round": "8",
    "eval_prompts": "4",
    "policy_steps": "2",
    "reward_heads": "2",
    "policy_candidates": "2",
    "poll_seconds": "0.5",
}


def readme_commands() -> list[list[str]]:
    """The argument lists of the sh block under "## Using it", `apprentice` dropped, `&&` chains split."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Using it\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "README.md's 'Using it' section has no sh block"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        while words:
            end = words.index("&&") if "&&" in words else len(words)
            assert words[0] == "apprentice", f"not an apprentice command in README.md: {line}"
            commands.append(words[1:end])
            words = words[end + 1 :]
    return commands


def shrink(words: list[str], tiny_model: Path) -> list[str]:
    """The command with what makes it take minutes on a CPU replaced; asserts that each target is there."""

    def replaced(old: list[str], new: list[str]) -> list[str]:
        for start in range(len(words) - len(old) + 1):
            if words[start : start + len(old)] == old:
                return [*words[:start], *new, *words[start + len(old) :]]
        raise AssertionError(f"README command {words} no longer has {old}: update this test")

    name = words[:2] if words[0] in {"judges", "policy", "prompts", "reward", "runs", "export"} else words[:1]
    if name == ["judges", "add"]:  # the default model would take minutes to convert and run on a CPU
        return replaced(["--model", "default"], ["--model", str(tiny_model)])
    if name == ["policy", "train"]:
        small = ["prompts_per_step=2", "completions_per_prompt=2", "max_new_tokens=8", "steps=2"]
        return [*words, *(item for setting in small for item in ("--set", setting))]
    if name == ["eval"]:  # the project's base policy is the tiny model, not the default one
        return [*replaced(["default"], [str(tiny_model)]), "--max-new-tokens", "8"]
    if name == ["loop"]:
        return replaced(["--rounds", "3"], ["--rounds", "1"])
    return words


def shrink_settings(toml: Path, tiny_model: Path) -> None:
    text = toml.read_text(encoding="utf-8")
    for key, value in {**SMALL_SETTINGS, "policy": json.dumps(str(tiny_model))}.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, f"apprentice.toml has {count} lines for {key}"
    text, count = re.subn(r'(?m)^reward_model = "minilm"$', f"reward_model = {json.dumps(str(tiny_model))}", text)
    assert count == 1
    toml.write_text(text, encoding="utf-8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_studio_briefly(words: list[str], cwd: Path) -> None:
    """`apprentice studio` serves until stopped: start it, wait for its API schema, stop it."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(apprentice.__file__).resolve().parents[1])}
    server = subprocess.Popen(
        [sys.executable, "-m", "apprentice", *words, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[0].decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5) as page:
                    assert page.status == 200
                    return
            except OSError:
                assert time.monotonic() < deadline, "the studio did not answer within two minutes"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_readme_using_it_walks_on_a_fresh_project(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHEAP_HASHES_ENV, "1")
    monkeypatch.delenv("APPRENTICE_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in HELD_OUT))
    commands = readme_commands()
    assert commands[0][0] == "init" and len(commands) >= 20, commands
    runner = CliRunner()
    timings = []
    for words in commands:
        started = time.monotonic()
        if words[0] == "studio":
            serve_studio_briefly(words, tmp_path)
        else:
            command = shrink(words, tiny_model)
            result = runner.invoke(app, command)
            assert result.exit_code == 0, f"apprentice {shlex.join(command)}\n{result.output}"
        if words[0] == "init":
            shrink_settings(tmp_path / words[1] / "apprentice.toml", tiny_model)
        timings.append(f"{time.monotonic() - started:6.1f}s apprentice {shlex.join(words)}")
    print("\n".join(timings))
    project = tmp_path / "myproject"
    assert (project / "runs" / "policy-grpo-1" / "policy").is_dir()
    assert (project / "loop" / "report.html").is_file()
    assert (tmp_path / "prefs.jsonl").read_text().count("\n") > 0

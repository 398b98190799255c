"""The README's and the docs' example commands run as written after ``bin/demo``, and find something.

A newcomer runs ``bin/demo`` and then tries the examples: each must work on the
demo's data dir and print an answer, not "0 hits" because the example logs are
dated or a build id is made up. This runs them all.

Which examples are run (the convention the docs follow):

- every fenced block marked ``sh`` in README.md and docs/*.md is run, command by
  command, in document order, from the top of a checkout whose data dir
  (``ER_DATA_DIR`` and ``.demo-data/``) holds what ``bin/demo-data`` (the data
  step of ``bin/demo``) leaves there;
- a block preceded by a line ``<!-- not run: WHY -->`` is not: it needs a live
  service (a Gerrit, a Zuul, an IRC server, a cluster), changes the machine
  (installs, systemd) or stands for the reader's own files; the comment says
  which, in the source, where whoever edits the block sees it;
- ``export NAME=VALUE`` sets the variable for the commands after it;
- an ``elastic-recheck`` or ``er-query`` command (``.venv/bin/`` or not) that
  prints must print something, and not "total hits: 0" unless the output block
  right after it in the doc shows exactly that; a command redirected into a file
  must fill the file; any other command is run by ``bash``;
- an output block (a fenced block with no language) right after a command
  shows what it prints: its count lines ("total hits: N", "builds matched: N,
  of which succeeded: M", the backtest totals) must be what the command prints
  on the demo's data, so the docs' figures stay true.

Each doc runs in a copy of the parts of the checkout it reads (``queries/``,
``examples/``) with a fresh copy of the demo's data dir, so a walkthrough that
adds a fingerprint or ingests a build changes neither the checkout nor the
other docs' data. The demo's data is built once, in a few seconds, on a log
server on 127.0.0.1: no network.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import click
import pytest
from click.testing import CliRunner

from elastic_recheck.cli import cli, er_query

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<why>.+?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<info>\S*)\s*$")
# The lines of an output block that state a figure of the demo's data.
COUNT_LINE = re.compile(r"^\s*(total hits: \d+|builds matched: \d+.*|failed builds matched: .*"
                        r"|successful builds matched: .*|share of the matched builds .*|\d+ unexplained failed .*)$")
COMMANDS = {"elastic-recheck": cli, "er-query": er_query}


@dataclasses.dataclass
class Block:
    path: Path
    line: int  # of the opening fence, counted from 1
    end: int  # of the closing fence
    info: str
    text: str
    not_run: str | None  # the reason given by a <!-- not run: ... --> line before it
    output: str | None = None  # the text of an output block right after it, if any


@dataclasses.dataclass
class Command:
    where: str  # file:line
    text: str  # as written, continuation lines joined
    expected: str | None  # the output block the doc shows for it


def read_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, each with the not-run marker before it; an
    output block (no language) with nothing but blank lines between it and the block
    before it is that block's output."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(before.strip())
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        block = Block(path, i + 1, end + 1, fence["info"], "\n".join(lines[i + 1:end]),
                      marker["why"] if marker else None)
        previous = blocks[-1] if blocks else None
        if (previous and not block.info and previous.info == "sh"
                and not any(line.strip() for line in lines[previous.end:i])):
            previous.output = block.text
        blocks.append(block)
        i = end + 1
    return blocks


def split_commands(block: Block) -> Iterator[Command]:
    """One command per line; a trailing backslash continues it, a here-document belongs to it."""
    lines = block.text.split("\n")
    i = 0
    while i < len(lines):
        first = i
        text = lines[i]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i].strip()
        heredoc = re.search(r"<<-?'?(\w+)'?", text)
        if heredoc:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == heredoc[1])
            text = "\n".join([text, *lines[i + 1:end + 1]])
            i = end
        i += 1
        if text.strip() and not text.lstrip().startswith("#"):
            yield Command(f"{block.path.relative_to(ROOT)}:{block.line + 1 + first}", text, None)


def examples(path: Path) -> list[Command]:
    commands: list[Command] = []
    for block in read_blocks(path):
        if block.info != "sh" or block.not_run:
            continue
        found = list(split_commands(block))
        if found and block.output is not None:
            found[-1].expected = block.output
        commands.extend(found)
    return commands


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir bin/demo leaves, built once by the same script (its data step)."""
    data = tmp_path_factory.mktemp("demo") / ".demo-data"
    env = {**_clean_environ(), "ER_DATA_DIR": str(data), "ER_BIN": str(Path(sys.executable).parent)}
    done = subprocess.run([str(ROOT / "bin" / "demo-data")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (data / "index").is_dir() and (data / "results.sqlite3").is_file()
    return data


def _clean_environ() -> dict[str, str]:
    """This process's environment without ER_* settings a developer may have exported."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ER_")}


def _checkout(tmp: Path, demo_data: Path) -> Path:
    """What the docs' commands read from a checkout after bin/demo, in tmp."""
    shutil.copytree(ROOT / "queries", tmp / "queries")
    (tmp / "examples").symlink_to(ROOT / "examples")
    (tmp / ".venv").symlink_to(Path(sys.executable).parent.parent)
    shutil.copytree(demo_data, tmp / ".demo-data", ignore=shutil.ignore_patterns("watch.lock"))
    return tmp


def _words(text: str) -> list[str]:
    """The shell words of one command line, comments dropped, operators (|, >, ;) as words of their own."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _as_click(text: str) -> tuple[click.Command, list[str]] | None:
    """The command object and arguments when the line is a plain elastic-recheck / er-query call
    (no variables, redirections, pipes or here-documents: those go to bash)."""
    if "$" in text or "\n" in text:
        return None
    words = _words(text)
    if not words or any(set(word) <= set("|&;<>()") for word in words):
        return None
    name = words[0].removeprefix(".venv/bin/")
    return (COMMANDS[name], words[1:]) if name in COMMANDS else None


def _is_ours(text: str) -> bool:
    """An elastic-recheck or er-query command, perhaps after VAR=value settings."""
    words = [w for w in _words(text.split("\n")[0]) if "=" not in w or w.startswith("-")]
    return bool(words) and words[0].removeprefix(".venv/bin/") in COMMANDS


def run(command: Command, cwd: Path, env: dict[str, str], runner: CliRunner) -> tuple[int, str, Path | None]:
    """Run one example as the doc has it: exit code, what it printed, and the file it wrote if redirected."""
    export = re.fullmatch(r"export (\w+)=(.*)", command.text.strip())
    if export:
        value = subprocess.run(["bash", "-c", f"printf %s {export[2]}"], cwd=cwd, env=env, capture_output=True,
                               text=True, check=True).stdout
        env[export[1]] = value
        return 0, "", None
    click_call = _as_click(command.text)
    if click_call:
        result = runner.invoke(click_call[0], click_call[1], env=env, catch_exceptions=True)
        printed = result.output + ("" if result.exception is None or isinstance(result.exception, SystemExit)
                                   else f"\n{type(result.exception).__name__}: {result.exception}")
        return result.exit_code, printed, None
    path_env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", command.text], cwd=cwd, env=path_env,
                          capture_output=True, text=True, timeout=120)
    words = _words(command.text.split("\n")[0])
    written = words[words.index(">") + 1] if ">" in words[:-1] else None
    return done.returncode, done.stdout + done.stderr, (cwd / written) if written else None


def _count_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if COUNT_LINE.match(line)]


WITH_EXAMPLES = [doc for doc in DOCS if examples(doc)]  # the others have only marked or no sh blocks


def test_the_readme_has_example_commands_to_run() -> None:
    assert ROOT / "README.md" in WITH_EXAMPLES


@pytest.mark.parametrize("doc", WITH_EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in WITH_EXAMPLES])
def test_every_example_command_runs_as_written_after_the_demo_and_finds_something(
        doc: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = examples(doc)
    cwd = _checkout(tmp_path, demo_data)
    monkeypatch.chdir(cwd)
    for key in [k for k in os.environ if k.startswith("ER_")]:
        monkeypatch.delenv(key)
    env = {**_clean_environ(), "ER_DATA_DIR": str(cwd / ".demo-data")}
    runner = CliRunner()
    failures = []
    for command in commands:
        words = _words(command.text.split("\n")[0])
        if "watch" in words or "--every" in words or words[0].startswith("bin/"):
            failures.append(f"{command.where}: runs until stopped or runs the demo or suite itself: "
                            f"mark its block <!-- not run: WHY -->")
            continue
        code, printed, written = run(command, cwd, env, runner)
        shown = f"{command.where}: {command.text}\n{printed[-2000:]}"
        is_ours = _is_ours(command.text)
        if code != 0:
            failures.append(f"exit {code}: {shown}")
        elif written is not None:
            if not written.is_file() or written.stat().st_size == 0:
                failures.append(f"wrote nothing to {written.name}: {shown}")
        elif is_ours and not printed.strip():
            failures.append(f"printed nothing: {shown}")
        elif is_ours and "total hits: 0" in printed and "total hits: 0" not in (command.expected or ""):
            failures.append(f"found nothing: {shown}")
        if command.expected is not None and code == 0:
            missing = [line for line in _count_lines(command.expected) if line not in _count_lines(printed)]
            if missing:
                failures.append(f"the doc shows {missing}, the command printed otherwise: {shown}")
    assert not failures, "\n\n".join(failures)


def test_the_docs_convention_is_kept() -> None:
    """The parts of the convention the runner relies on: a not-run marker says why, and it is
    attached to an sh block (a marker elsewhere would silently exempt nothing, or the wrong block)."""
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if "not run" in line and line.lstrip().startswith("<!--"):
                assert NOT_RUN.match(line.strip()), f"{doc.name}:{number}: write it as <!-- not run: WHY -->"
        for block in read_blocks(doc):
            if block.not_run is not None:
                assert block.info == "sh", f"{doc.name}:{block.line}: a not-run marker before a non-sh block"
    assert examples(ROOT / "README.md"), "the README has example commands the test runs"

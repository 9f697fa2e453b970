"""The `wit` command as a user meets it: help that teaches, and bad input answered with a message
and exit code 2, never a traceback. Runs the real console entry point in a subprocess."""

import argparse
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit.cli import build_parser
from core.commands import Command, command
from core.errors import EXIT_BAD_INPUT

ROOT = Path(__file__).resolve().parents[2]

COMMANDS = [
    ["queries", "build"], ["pipeline", "match"], ["pipeline", "balance"], ["pipeline", "download"],
    ["pipeline", "run"], ["inspect"], ["train"], ["eval", "zeroshot"], ["demo"],
]


def wit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wit.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert len(text) > 300, f"wit {' '.join(command)} --help is too thin to teach anything"


def test_top_level_help_lists_the_stages(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for stage in ("queries build", "pipeline match", "pipeline balance", "pipeline download", "train",
                  "eval zeroshot", "inspect", "demo"):
        assert stage in text


def test_building_the_parser_imports_neither_ray_nor_torch():
    """`wit --help` and a mistyped option answer in a blink: each handler's module, which imports Ray
    or torch (seconds), is imported only when its command runs (core.commands)."""
    probe = ("import sys; from wit.cli import build_parser; build_parser()\n"
             "print(' '.join(m for m in ('ray', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [], f"building the parser imported {done.stdout.strip()}"


def _leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
        return
    for name, child in subcommands[0].choices.items():
        yield from _leaf_parsers(child, (*path, name))


def test_every_subcommand_names_a_handler_that_exists():
    """A handler is named by a string (core.commands): a typo there must fail here, not at a user's run."""
    leaves = dict(_leaf_parsers(build_parser()))
    assert ("pipeline", "match") in leaves and ("eval", "linear-probe") in leaves and ("models",) in leaves
    for path, parser in leaves.items():
        run = parser.get_default("run")
        assert isinstance(run, Command), f"wit {' '.join(path)}: run={run!r} is not a core.commands.command"
        assert callable(run.resolve()), f"wit {' '.join(path)}: {run!r}"


def test_a_command_imports_its_module_when_called_and_names_a_typo():
    unborn = command("no_such_module_here", "run")          # naming it imports nothing...
    with pytest.raises(ModuleNotFoundError):
        unborn(None)                                         # ...calling it does
    lazy = command("json", "dumps")
    assert repr(lazy) == "command('json', 'dumps')"
    assert lazy([1, 2]) == "[1, 2]"
    with pytest.raises(AttributeError, match="json has no command 'dump_s'"):
        command("json", "dump_s")({})


def _assert_user_error(result: subprocess.CompletedProcess, *mentions: str) -> None:
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("wit: error:") or "wit: error:" in result.stderr
    for mention in mentions:
        assert mention in result.stderr


@pytest.mark.slow
def test_missing_dump_path(tmp_path):
    missing = tmp_path / "enwiki-pages-articles.xml.bz2"
    result = wit("queries", "build", "--dump", str(missing), "--wordnet", str(Path(__file__).parents[2] / "queries/data/wordnet"),
                 "--out", str(tmp_path / "q.parquet"), "--no-ray")
    _assert_user_error(result, str(missing))
    assert not (tmp_path / "q.parquet").exists()


@pytest.fixture(scope="module")
def queries_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("q") / "queries.parquet"
    table = pa.table({
        "query_id": pa.array([0, 1], pa.int32()), "query": ["red", "circle"],
        "sources": pa.array([["word"], ["wordnet"]], pa.list_(pa.string())),
        "count": pa.array([5, 3], pa.int64()), "pmi": pa.array([None, None], pa.float64()),
    })
    pq.write_table(table, path)
    return path


@pytest.mark.slow
def test_empty_pool(tmp_path, queries_file):
    pool = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"url": pa.array([], pa.string()), "caption": pa.array([], pa.string())}), pool)
    result = wit("pipeline", "match", str(pool), "--queries", str(queries_file), "--out", str(tmp_path / "m"))
    _assert_user_error(result, "pool.parquet")


@pytest.mark.slow
def test_pool_without_url_column(tmp_path, queries_file):
    pool = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"link": ["http://127.0.0.1/a.jpg"], "caption": ["a red circle"]}), pool)
    result = wit("pipeline", "match", str(pool), "--queries", str(queries_file), "--out", str(tmp_path / "m"))
    _assert_user_error(result, "pool.parquet", "link")

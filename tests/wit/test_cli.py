"""The `wit` command as a user meets it: help that teaches, and bad input answered with a message
and exit code 2, never a traceback. Runs the real console entry point in a subprocess."""

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit.cli import build_parser
from core.errors import EXIT_BAD_INPUT

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

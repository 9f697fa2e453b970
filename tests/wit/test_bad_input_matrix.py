"""Every command fails well: a bad-input matrix over all of `wit`.

Rows: the 15 subcommands (queries build; pipeline match, balance, download, run; inspect; train;
tokenizer train; eval zeroshot, retrieval, linear-probe; plot; plan; models; demo). Columns: the 9
bad-input classes of CLASSES (missing path, empty dir, wrong file type, corrupt Parquet, Parquet with
the wrong schema, unfinished stage dir, negative or zero size, unknown model or template set, bucket
URI without credentials). 15 x 9 = 135 cells, of which 98 apply (APPLIES below lists them per
subcommand, with why the others do not: `wit models` takes no input at all). Every applicable cell
runs the real entry point in-process (`wit.cli.main(argv)`) and asserts exit 2, a message naming the
offending input, no traceback on stderr, no Ray started, and no output left behind (the command's
OUT does not exist afterwards, so nothing can look complete). The four rows of issue #18 run again as
subprocesses of the console entry point. Valid inputs are checked to pass the same checks (CONTROLS),
so the matrix cannot pass by refusing everything.

Bucket cells run with no AWS credentials in the environment, AWS_EC2_METADATA_DISABLED=true and
AWS_ENDPOINT_URL_S3 at a closed port on 127.0.0.1: nothing leaves the machine. The refusal must come
from the credentials check, which names the URI; a command that got as far as connecting would fail
with another message (connection refused), and the cell would fail.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit.cli import build_parser, main
from core.errors import EXIT_BAD_INPUT

REPO = Path(__file__).parents[2]
CLASSES = ("missing", "empty_dir", "wrong_type", "corrupt_parquet", "wrong_schema", "unfinished",
           "bad_number", "unknown_name", "no_credentials")
SUBCOMMANDS = ("queries build", "pipeline match", "pipeline balance", "pipeline download", "pipeline run",
               "inspect", "train", "tokenizer train", "eval zeroshot", "eval retrieval", "eval linear-probe",
               "plot", "plan", "models", "demo")
MATCHED = {"key": ["k1"], "url": ["http://127.0.0.1/a.jpg"], "text": ["a red circle"],
           "query_ids": pa.array([[0]], pa.list_(pa.int32()))}
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")   # the bytes are never decoded here


# ---------------------------------------------------------------------------------------------
# Inputs, good and bad, built once


def _parquet(path: Path, columns: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def _stage(path: Path, columns: dict, done: bool = True, name: str = "part-00000.parquet") -> Path:
    _parquet(path / name, columns)
    if done:
        (path / "_SUCCESS.json").write_text('{"stage": "test"}\n')
    return path


def _garbage(path: Path, text: str = "this is not parquet\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


pytestmark = pytest.mark.usefixtures("no_ray")   # each cell checks that Ray was not started

@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("inputs")
    p: dict[str, Path] = {"missing": root / "does-not-exist", "empty": root / "empty"}
    p["empty"].mkdir()
    p["text_file"] = _garbage(root / "notes.txt")
    p["corrupt_parquet"] = _garbage(root / "corrupt.parquet", "PAR1 truncated")
    p["wordnet"] = REPO / "queries" / "data" / "wordnet"
    p["dump"] = next((REPO / "queries" / "data" / "enwiki").glob("*.bz2"))
    p["queries"] = _parquet(root / "queries.parquet", {"query_id": pa.array([0], pa.int32()), "query": ["red"]})
    p["pool"] = _parquet(root / "pool.parquet", {"url": ["http://127.0.0.1/a.jpg"], "caption": ["a red circle"]})
    p["pool_no_url"] = _parquet(root / "pool_no_url" / "pool.parquet", {"link": ["x"], "caption": ["red"]})
    p["matched"] = _stage(root / "matched", MATCHED)
    p["matched_unfinished"] = _stage(root / "matched_unfinished", MATCHED, done=False)
    p["matched_corrupt"] = _stage(root / "matched_corrupt", MATCHED)
    _garbage(p["matched_corrupt"] / "part-00001.parquet")
    p["matched_no_ids"] = _stage(root / "matched_no_ids", {"key": ["k"], "url": ["u"], "text": ["t"]})
    p["selected"] = _stage(root / "selected", {**MATCHED, "claimed_by": MATCHED["query_ids"]})
    p["selected_unfinished"] = _stage(root / "selected_unf", {**MATCHED, "claimed_by": MATCHED["query_ids"]}, False)
    p["selected_corrupt"] = _stage(root / "selected_corrupt", {**MATCHED, "claimed_by": MATCHED["query_ids"]})
    _garbage(p["selected_corrupt"] / "part-00001.parquet")
    p["selected_no_claims"] = _stage(root / "selected_no_claims", MATCHED)
    corpus = {"key": ["k"], "url": ["u"], "caption": ["a red circle"], "jpg": [JPEG]}
    p["corpus"] = _stage(root / "corpus", corpus)
    p["corpus_unfinished"] = _stage(root / "corpus_unfinished", corpus, done=False)
    p["corpus_corrupt"] = _stage(root / "corpus_corrupt", corpus)           # issue #18: a part that is not Parquet
    _garbage(p["corpus_corrupt"] / "part-00001.parquet")
    p["corpus_no_jpg"] = _stage(root / "corpus_no_jpg", {"key": ["k"], "caption": ["c"], "image": [JPEG]})
    p["corpus_no_caption"] = _stage(root / "corpus_no_caption", {"key": ["k"], "jpg": [JPEG]})
    p["checkpoint"] = _checkpoint(root / "run")
    p["run_unfinished"] = root / "run_unfinished"                            # training started, no step yet
    (p["run_unfinished"] / "ray").mkdir(parents=True)
    (p["run_unfinished"] / "tokenizer.json").write_text("{}")
    p["images"] = root / "images"
    for label in ("red", "blue"):
        (p["images"] / label).mkdir(parents=True)
        (p["images"] / label / "0.jpg").write_bytes(JPEG)
    p["images_corrupt"] = root / "images_corrupt"                            # issue #18: a corrupt image set
    _garbage(p["images_corrupt"] / "part-0.parquet")
    p["images_no_label"] = _parquet(root / "images_no_label.parquet", {"jpg": [JPEG]})
    p["captions"] = root / "captions.jsonl"
    p["captions"].write_text(json.dumps({"file": "images/red/0.jpg", "caption": "a red circle"}) + "\n")
    p["captions_no_caption"] = _parquet(root / "captions_no_caption.parquet", {"jpg": [JPEG], "text": ["x"]})
    return {k: str(v) for k, v in p.items()}


def _checkpoint(run: Path) -> Path:
    """A run dir whose checkpoints/latest has the files eval reads. The model file is a real torch.save
    of an empty state: a check that loaded it would be caught building no model, never passing."""
    import torch

    latest = run / "checkpoints" / "latest"
    latest.mkdir(parents=True)
    torch.save({}, latest / "model.pt")
    (latest / "train_state.json").write_text(json.dumps({"model_config": {}, "train_config": {}}))
    (latest / "tokenizer.json").write_text("{}")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    return run


# ---------------------------------------------------------------------------------------------
# The matrix: (subcommand, class) -> (argv, what the message must name). OUT is the cell's output root.

S3 = "s3://wit-no-credentials/prefix"


def _cells(i: dict[str, str], out: str) -> dict[tuple[str, str], tuple[list[str], str]]:
    q = ["queries", "build", "--wordnet", i["wordnet"], "--out", f"{out}/q.parquet", "--no-ray"]
    match = ["pipeline", "match", "--queries", i["queries"], "--out", out]
    run = ["pipeline", "run", "--queries", i["queries"], "--out", out]
    bal = ["pipeline", "balance", "--out", out, "--matched"]
    dl = ["pipeline", "download", "--out", out, "--selected"]
    train = ["train", "--run-dir", out, "--corpus"]
    tok = ["tokenizer", "train", "--out", f"{out}/tok.json", "--captions"]
    ck = ["--checkpoint", i["checkpoint"]]
    zs = ["eval", "zeroshot", "--out", f"{out}/r.json"]
    rt = ["eval", "retrieval", "--out", f"{out}/r.json"]
    lp = ["eval", "linear-probe", "--out", f"{out}/r.json"]
    return {
        ("queries build", "missing"): ([*q, "--dump", i["missing"]], i["missing"]),
        ("queries build", "empty_dir"): ([*q, "--dump", i["dump"], "--wordnet", i["empty"]], i["empty"]),
        ("queries build", "wrong_type"): ([*q, "--dump", i["text_file"]], i["text_file"]),
        ("queries build", "bad_number"): ([*q, "--dump", i["dump"], "--max-queries", "0"], "--max-queries"),
        ("queries build", "no_credentials"): ([*q, "--dump", f"{S3}/dump.xml.bz2"], S3),

        ("pipeline match", "missing"): ([*match, i["missing"]], i["missing"]),
        ("pipeline match", "empty_dir"): ([*match, i["empty"]], i["empty"]),
        ("pipeline match", "wrong_type"): ([*match, i["text_file"]], i["text_file"]),
        ("pipeline match", "corrupt_parquet"): ([*match, i["corrupt_parquet"]], i["corrupt_parquet"]),
        ("pipeline match", "wrong_schema"): ([*match, i["pool_no_url"]], "link"),
        ("pipeline match", "bad_number"): ([*match, i["pool"], "--max-text-chars", "0"], "--max-text-chars"),
        ("pipeline match", "unknown_name"): ([*match, i["pool"], "--format", "webp"], "webp"),
        ("pipeline match", "no_credentials"): ([*match, f"{S3}/pool.parquet"], S3),

        ("pipeline run", "missing"): ([*run, i["missing"]], i["missing"]),
        ("pipeline run", "empty_dir"): ([*run, i["empty"]], i["empty"]),
        ("pipeline run", "wrong_type"): ([*run, i["text_file"]], i["text_file"]),
        ("pipeline run", "corrupt_parquet"): ([*run, i["pool"], "--queries", i["corrupt_parquet"]], i["corrupt_parquet"]),
        ("pipeline run", "wrong_schema"): ([*run, i["pool"], "--queries", i["pool"]], "query_id"),
        ("pipeline run", "bad_number"): ([*run, i["pool"], "--cap", "-5"], "--cap"),
        ("pipeline run", "unknown_name"): ([*run, i["pool"], "--format", "webp"], "webp"),
        ("pipeline run", "no_credentials"): ([*run, i["pool"], "--queries", f"{S3}/q.parquet"], S3),

        ("pipeline balance", "missing"): ([*bal, i["missing"]], i["missing"]),
        ("pipeline balance", "empty_dir"): ([*bal, i["empty"]], i["empty"]),
        ("pipeline balance", "wrong_type"): ([*bal, i["text_file"]], i["text_file"]),
        ("pipeline balance", "corrupt_parquet"): ([*bal, i["matched_corrupt"]], "part-00001.parquet"),
        ("pipeline balance", "wrong_schema"): ([*bal, i["matched_no_ids"]], "query_ids"),
        ("pipeline balance", "unfinished"): ([*bal, i["matched_unfinished"]], i["matched_unfinished"]),
        ("pipeline balance", "bad_number"): ([*bal, i["matched"], "--cap", "0"], "--cap"),
        ("pipeline balance", "no_credentials"): ([*bal, f"{S3}/matched"], S3),

        ("pipeline download", "missing"): ([*dl, i["missing"]], i["missing"]),
        ("pipeline download", "empty_dir"): ([*dl, i["empty"]], i["empty"]),
        ("pipeline download", "wrong_type"): ([*dl, i["text_file"]], i["text_file"]),
        ("pipeline download", "corrupt_parquet"): ([*dl, i["selected_corrupt"]], "part-00001.parquet"),
        ("pipeline download", "wrong_schema"): ([*dl, i["selected_no_claims"]], "claimed_by"),
        ("pipeline download", "unfinished"): ([*dl, i["selected_unfinished"]], i["selected_unfinished"]),
        ("pipeline download", "bad_number"): ([*dl, i["selected"], "--image-size", "0"], "--image-size"),
        ("pipeline download", "no_credentials"): ([*dl, f"{S3}/selected"], S3),

        ("inspect", "missing"): (["inspect", i["missing"], "--html", f"{out}/s.html"], i["missing"]),
        ("inspect", "empty_dir"): (["inspect", i["empty"], "--html", f"{out}/s.html"], i["empty"]),
        ("inspect", "wrong_type"): (["inspect", i["text_file"], "--html", f"{out}/s.html"], i["text_file"]),
        ("inspect", "corrupt_parquet"): (["inspect", i["matched_corrupt"], "--html", f"{out}/s.html"],
                                         "part-00001.parquet"),
        ("inspect", "bad_number"): (["inspect", i["matched"], "-n", "-1", "--html", f"{out}/s.html"], "-n"),
        ("inspect", "no_credentials"): (["inspect", f"{S3}/matched", "--html", f"{out}/s.html"], S3),

        ("train", "missing"): ([*train, i["missing"]], i["missing"]),
        ("train", "empty_dir"): ([*train, i["empty"]], i["empty"]),
        ("train", "wrong_type"): ([*train, i["text_file"]], i["text_file"]),
        ("train", "corrupt_parquet"): ([*train, i["corpus_corrupt"]], "part-00001.parquet"),
        ("train", "wrong_schema"): ([*train, i["corpus_no_jpg"]], "jpg"),
        ("train", "unfinished"): ([*train, i["corpus_unfinished"]], i["corpus_unfinished"]),
        ("train", "bad_number"): ([*train, i["corpus"], "--steps", "-1"], "--steps"),
        ("train", "unknown_name"): ([*train, i["corpus"], "--model", "ViT-Z/99"], "ViT-Z/99"),
        ("train", "no_credentials"): ([*train, f"{S3}/corpus"], S3),

        ("tokenizer train", "missing"): ([*tok, i["missing"]], i["missing"]),
        ("tokenizer train", "empty_dir"): ([*tok, i["empty"]], i["empty"]),
        ("tokenizer train", "wrong_type"): ([*tok, i["pool"]], i["pool"]),
        ("tokenizer train", "corrupt_parquet"): ([*tok, i["corpus_corrupt"]], "part-00001.parquet"),
        ("tokenizer train", "wrong_schema"): ([*tok, i["corpus_no_caption"]], "caption"),
        ("tokenizer train", "unfinished"): ([*tok, i["corpus_unfinished"]], i["corpus_unfinished"]),
        ("tokenizer train", "bad_number"): ([*tok, i["corpus"], "--vocab-size", "0"], "--vocab-size"),
        ("tokenizer train", "no_credentials"): ([*tok, f"{S3}/captions.txt"], S3),

        # issue #18: a missing checkpoint is named before the (corrupt) images are read
        ("eval zeroshot", "missing"): ([*zs, "--checkpoint", i["missing"], "--images", i["images_corrupt"]],
                                       i["missing"]),
        ("eval zeroshot", "empty_dir"): ([*zs, *ck, "--images", i["empty"]], i["empty"]),
        ("eval zeroshot", "wrong_type"): ([*zs, *ck, "--images", i["text_file"]], i["text_file"]),
        ("eval zeroshot", "corrupt_parquet"): ([*zs, *ck, "--images", i["images_corrupt"]], "part-0.parquet"),
        ("eval zeroshot", "wrong_schema"): ([*zs, *ck, "--images", i["images_no_label"]], "label"),
        ("eval zeroshot", "unfinished"): ([*zs, "--checkpoint", i["run_unfinished"], "--images", i["images"]],
                                          i["run_unfinished"]),
        ("eval zeroshot", "bad_number"): ([*zs, *ck, "--images", i["images"], "--batch-size", "0"], "--batch-size"),
        ("eval zeroshot", "unknown_name"): ([*zs, *ck, "--images", i["images"], "--classes-json", "cifar11"],
                                            "cifar11"),
        ("eval zeroshot", "no_credentials"): ([*zs, "--checkpoint", f"{S3}/run", "--images", i["images"]], S3),

        ("eval retrieval", "missing"): ([*rt, *ck, "--captions", i["missing"]], i["missing"]),
        ("eval retrieval", "empty_dir"): ([*rt, *ck, "--captions", i["captions"], "--images", i["empty"]], i["empty"]),
        ("eval retrieval", "wrong_type"): ([*rt, *ck, "--captions", i["text_file"]], i["text_file"]),
        ("eval retrieval", "corrupt_parquet"): ([*rt, *ck, "--captions", i["corrupt_parquet"]], i["corrupt_parquet"]),
        ("eval retrieval", "wrong_schema"): ([*rt, *ck, "--captions", i["captions_no_caption"]], "caption"),
        ("eval retrieval", "unfinished"): ([*rt, "--checkpoint", i["run_unfinished"], "--captions", i["captions"]],
                                           i["run_unfinished"]),
        ("eval retrieval", "bad_number"): ([*rt, *ck, "--captions", i["captions"], "--local-max-rows", "-5"],
                                           "--local-max-rows"),
        ("eval retrieval", "no_credentials"): ([*rt, *ck, "--captions", f"{S3}/captions.jsonl"], S3),

        ("eval linear-probe", "missing"): ([*lp, *ck, "--train", i["missing"], "--test", i["images"]], i["missing"]),
        ("eval linear-probe", "empty_dir"): ([*lp, *ck, "--train", i["images"], "--test", i["empty"]], i["empty"]),
        ("eval linear-probe", "wrong_type"): ([*lp, *ck, "--train", i["text_file"], "--test", i["images"]],
                                              i["text_file"]),
        ("eval linear-probe", "corrupt_parquet"): ([*lp, *ck, "--train", i["images_corrupt"], "--test", i["images"]],
                                                   "part-0.parquet"),
        ("eval linear-probe", "wrong_schema"): ([*lp, *ck, "--train", i["images"], "--test", i["images_no_label"]],
                                                "label"),
        ("eval linear-probe", "unfinished"): ([*lp, "--checkpoint", i["run_unfinished"], "--train", i["images"],
                                               "--test", i["images"]], i["run_unfinished"]),
        ("eval linear-probe", "bad_number"): ([*lp, *ck, "--train", i["images"], "--test", i["images"],
                                               "--val-fraction", "0"], "--val-fraction"),
        ("eval linear-probe", "no_credentials"): ([*lp, "--checkpoint", f"{S3}/run", "--train", i["images"],
                                                   "--test", i["images"]], S3),

        ("plot", "missing"): (["plot", i["missing"], "--out", f"{out}/m.png"], i["missing"]),
        ("plot", "empty_dir"): (["plot", i["empty"], "--out", f"{out}/m.png"], i["empty"]),
        ("plot", "wrong_type"): (["plot", i["text_file"], "--out", f"{out}/m.png"], i["text_file"]),
        ("plot", "unfinished"): (["plot", i["run_unfinished"], "--out", f"{out}/m.png"], "metrics.jsonl"),
        ("plot", "no_credentials"): (["plot", f"{S3}/run", "--out", f"{out}/m.png"], S3),

        ("plan", "missing"): (["plan", i["missing"] + ".yaml", "--json", f"{out}/p.json"], i["missing"]),
        ("plan", "empty_dir"): (["plan", "paper", "--results", i["empty"], "--json", f"{out}/p.json"], i["empty"]),
        ("plan", "wrong_type"): (["plan", "paper", "--cluster", i["empty"], "--json", f"{out}/p.json"], i["empty"]),
        ("plan", "bad_number"): (["plan", "paper", "--pairs", "-5", "--json", f"{out}/p.json"], "--pairs"),
        ("plan", "unknown_name"): (["plan", "paper", "--model", "ViT-Z/99", "--json", f"{out}/p.json"], "ViT-Z/99"),

        ("demo", "wrong_type"): (["demo", "--out", i["text_file"]], i["text_file"]),
        ("demo", "bad_number"): (["demo", "--out", out, "--steps", "0"], "--steps"),
        ("demo", "no_credentials"): (["demo", "--out", S3], S3),
    }


# Which classes apply to which subcommand, and why the others do not.
APPLIES = {
    "queries build": ("missing", "empty_dir", "wrong_type", "bad_number", "no_credentials"),  # reads bz2 + a dir
    "pipeline match": ("missing", "empty_dir", "wrong_type", "corrupt_parquet", "wrong_schema", "bad_number",
                       "unknown_name", "no_credentials"),                                    # pool is not a stage
    "pipeline run": ("missing", "empty_dir", "wrong_type", "corrupt_parquet", "wrong_schema", "bad_number",
                     "unknown_name", "no_credentials"),
    "pipeline balance": ("missing", "empty_dir", "wrong_type", "corrupt_parquet", "wrong_schema", "unfinished",
                         "bad_number", "no_credentials"),                                    # no names to choose
    "pipeline download": ("missing", "empty_dir", "wrong_type", "corrupt_parquet", "wrong_schema", "unfinished",
                          "bad_number", "no_credentials"),
    "inspect": ("missing", "empty_dir", "wrong_type", "corrupt_parquet", "bad_number", "no_credentials"),
    # inspect reads any Parquet (no schema to miss) finished or not (failures/ has no marker of its own)
    "train": CLASSES,
    "tokenizer train": ("missing", "empty_dir", "wrong_type", "corrupt_parquet", "wrong_schema", "unfinished",
                        "bad_number", "no_credentials"),
    "eval zeroshot": CLASSES,                      # unfinished: a run dir with no checkpoint yet
    "eval retrieval": ("missing", "empty_dir", "wrong_type", "corrupt_parquet", "wrong_schema", "unfinished",
                       "bad_number", "no_credentials"),     # no class names or templates to choose
    "eval linear-probe": ("missing", "empty_dir", "wrong_type", "corrupt_parquet", "wrong_schema", "unfinished",
                          "bad_number", "no_credentials"),
    "plot": ("missing", "empty_dir", "wrong_type", "unfinished", "no_credentials"),    # reads metrics.jsonl
    "plan": ("missing", "empty_dir", "wrong_type", "bad_number", "unknown_name"),      # local files, no Parquet
    "models": (),                                                                      # takes no input
    "demo": ("wrong_type", "bad_number", "no_credentials"),                            # its only input is --out
}
CELLS = [(command, kind) for command in SUBCOMMANDS for kind in APPLIES[command]]


def test_the_table_covers_every_subcommand_and_its_size_is_the_docstring_s():
    registered = {" ".join(c) for c in _commands(build_parser())}
    assert registered == set(SUBCOMMANDS)
    assert len(SUBCOMMANDS) * len(CLASSES) == 135 and len(CELLS) == 98
    assert set(_cells({k: "x" for k in _INPUT_KEYS}, "out")) == set(CELLS)


def _commands(parser, prefix=()) -> list[tuple[str, ...]]:
    import argparse

    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name)) or [(*prefix, name)]
    return found


_INPUT_KEYS = ("missing", "empty", "text_file", "corrupt_parquet", "wordnet", "dump", "queries", "pool",
               "pool_no_url", "matched", "matched_unfinished", "matched_corrupt", "matched_no_ids", "selected",
               "selected_unfinished", "selected_corrupt", "selected_no_claims", "corpus", "corpus_unfinished",
               "corpus_corrupt", "corpus_no_jpg", "corpus_no_caption", "checkpoint", "run_unfinished", "images",
               "images_corrupt", "images_no_label", "captions", "captions_no_caption")


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch, tmp_path):
    """No AWS credentials anywhere the SDK looks, no instance metadata, and an S3 endpoint on a closed
    loopback port: a bucket URI can only fail, and only here."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


def _ray_started() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.mark.parametrize("command,kind", CELLS, ids=[f"{c}|{k}" for c, k in CELLS])
def test_bad_input_exits_2_naming_it(command, kind, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    argv, names = _cells(inputs, str(out))[command, kind]
    try:
        code = main(argv)
    except SystemExit as done:                     # argparse's own refusals (a number below its bound)
        code = done.code
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "error:" in err and names in err, f"the message does not name {names!r}:\n{err}"
    if kind == "no_credentials":                   # refused by the check, not by a failed connection
        assert "no AWS credentials" in err or "writes a local directory" in err, err
    assert not _ray_started(), "validation must fail before Ray starts"
    assert not out.exists(), f"bad input left output behind: {sorted(out.rglob('*'))}"


# ---------------------------------------------------------------------------------------------
# Valid inputs pass the same checks (else the matrix could pass by refusing everything)


def _check_only(argv: list[str]) -> None:
    """Parse `argv` with the real parser and run only its handler's checks."""
    from pipeline import checks as pipeline_checks
    from queries.checks import check_build
    from queries.cli import config_from_args
    from trainer import checks as trainer_checks
    from trainer.eval import checks as eval_checks
    from trainer.config import TrainConfig
    from core.options import config_from_args as train_config
    from wit.plan.checks import check_plan_args

    args = build_parser().parse_args(argv)
    by_command = {
        "queries": lambda a: check_build(config_from_args(a), a.out),
        "match": pipeline_checks.check_match, "balance": pipeline_checks.check_balance,
        "download": pipeline_checks.check_download, "run": pipeline_checks.check_run,
        "inspect": pipeline_checks.check_inspect,
        "train": lambda a: trainer_checks.check_train(train_config(TrainConfig, a), a.resume),
        "tokenizer": lambda a: trainer_checks.check_tokenizer(a.captions, a.openai_merges, a.out, a.vocab_size),
        "zeroshot": eval_checks.check_zeroshot, "retrieval": eval_checks.check_retrieval,
        "linear-probe": eval_checks.check_linear_probe,
        "plot": lambda a: trainer_checks.check_plot(a.run_dir, a.out), "plan": check_plan_args,
    }
    key = argv[1] if argv[0] in ("pipeline", "eval") else argv[0]
    by_command[key](args)


def _controls(i: dict[str, str], out: str) -> list[list[str]]:
    ck = ["--checkpoint", i["checkpoint"]]
    return [
        ["queries", "build", "--dump", i["dump"], "--wordnet", i["wordnet"], "--out", f"{out}/q.parquet"],
        ["pipeline", "match", i["pool"], "--queries", i["queries"], "--out", out],
        ["pipeline", "run", i["pool"], "--queries", i["queries"], "--out", out],
        ["pipeline", "balance", "--matched", i["matched"], "--out", out],
        ["pipeline", "download", "--selected", i["selected"], "--out", out],
        ["inspect", i["matched"]], ["inspect", i["pool"]],
        ["train", "--corpus", i["corpus"], "--run-dir", out],
        ["tokenizer", "train", "--captions", i["corpus"], "--out", f"{out}/tok.json"],
        ["tokenizer", "train", "--captions", i["text_file"], "--out", f"{out}/tok.json"],
        ["eval", "zeroshot", *ck, "--images", i["images"], "--classes-json", "cifar10"],
        ["eval", "retrieval", *ck, "--captions", i["captions"]],
        ["eval", "linear-probe", *ck, "--train", i["images"], "--test", i["images"]],
        ["plot", i["checkpoint"], "--out", f"{out}/m.png"],
        ["plan", "paper", "--pairs", "4e9", "--model", "ViT-B/32"],
    ]


def test_good_inputs_pass_the_checks(inputs, tmp_path):
    for argv in _controls(inputs, str(tmp_path / "out")):
        _check_only(argv)                              # raises WitError if a check refuses a good input
    assert not (tmp_path / "out").exists()


def test_a_run_dir_made_by_another_config_is_named(inputs, tmp_path, capsys):
    from trainer.config import TrainConfig
    from core.config import to_dict

    run = tmp_path / "run"
    run.mkdir()
    (run / "_SUCCESS.json").write_text(json.dumps({"config": to_dict(TrainConfig(inputs["corpus"], str(run)))}))
    assert main(["train", "--corpus", inputs["corpus"], "--run-dir", str(run), "--lr", "0.001"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "another config" in err and "lr: 0.0005 there, 0.001 now" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Issue #18's four rows, through the console entry point


def _wit(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wit.cli", *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("cell", [("train", "corrupt_parquet"), ("train", "wrong_schema"),
                                  ("eval zeroshot", "missing"), ("plan", "bad_number")], ids="|".join)
def test_issue_rows_through_the_entry_point(cell, inputs, tmp_path):
    argv, names = _cells(inputs, str(tmp_path / "out"))[cell]
    result = _wit(*argv)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and names in result.stderr and "hint:" in result.stderr
    assert result.stdout == "" and not (tmp_path / "out").exists()

"""Options generated from a config dataclass (core.options): a default lives only in the dataclass."""

import argparse
import dataclasses

import pytest

from trainer.cli import TRAIN_FIXED, TRAIN_OPTIONS
from trainer.config import TrainConfig
from trainer.eval.config import EmbedConfig, LinearProbeConfig, RetrievalConfig, ZeroShotConfig
from wit.cli import build_parser
from core.options import Option, add_config_options, config_from_args


def _train(*argv: str) -> TrainConfig:
    args = build_parser().parse_args(["train", "--corpus", "C", "--run-dir", "R", *argv])
    return config_from_args(TrainConfig, args, placement_strategy="SPREAD" if args.spread else "PACK")


def test_wit_train_defaults_are_train_configs():
    assert _train() == TrainConfig("C", "R")


def test_options_reach_their_fields():
    cfg = _train("--workers", "3", "--gpu", "--no-compile", "--lr", "1e-3", "--tokenizer", "t.json",
                 "--vocab-size", "300", "--steps", "7", "--spread", "--precision", "bf16")
    assert (cfg.num_workers, cfg.use_gpu, cfg.compile, cfg.lr, cfg.tokenizer_path, cfg.tokenizer_vocab_size,
            cfg.steps, cfg.placement_strategy, cfg.precision) == (3, True, False, 1e-3, "t.json", 300, 7,
                                                                   "SPREAD", "bf16")


def test_every_field_has_an_option_or_a_reason():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(TRAIN_OPTIONS) | TRAIN_FIXED == names and not set(TRAIN_OPTIONS) & TRAIN_FIXED


def test_a_new_field_gets_its_option_and_a_renamed_one_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Config:
        size: int = 3
        added: float = 0.5

    parser = argparse.ArgumentParser()
    add_config_options(parser, Config, {"size": Option("n", minimum=1)})
    assert config_from_args(Config, parser.parse_args(["--added", "2"])) == Config(3, 2.0)
    with pytest.raises(TypeError, match="renamed"):
        add_config_options(argparse.ArgumentParser(), Config, {"renamed": Option("n")})


@pytest.mark.parametrize("argv,flag", [(["--batch-size", "1"], "--batch-size"), (["--steps", "0"], "--steps"),
                                       (["--workers", "-2"], "--workers"), (["--lr", "x"], "--lr"),
                                       (["--precision", "fp8"], "--precision")])
def test_out_of_range_values_are_refused_by_argparse(argv, flag, capsys):
    with pytest.raises(SystemExit) as done:
        _train(*argv)
    assert done.value.code == 2 and f"argument {flag}" in capsys.readouterr().err


def test_wit_eval_defaults_are_the_eval_configs(capsys):
    """`wit eval`'s options take their defaults from the eval configs, and the help text says them."""
    parse = build_parser().parse_args
    probe = parse(["eval", "linear-probe", "--checkpoint", "C", "--train", "T", "--test", "T"])
    assert (probe.batch_size, probe.local_max_rows, probe.val_fraction, probe.seed) == astuple_of(
        LinearProbeConfig("C", "T", "T"), "batch_size", "local_max_rows", "val_fraction", "seed")
    retrieval = parse(["eval", "retrieval", "--checkpoint", "C", "--captions", "c.jsonl"])
    assert (retrieval.batch_size, retrieval.local_max_rows) == astuple_of(
        RetrievalConfig("C", "c.jsonl"), "batch_size", "local_max_rows")
    zeroshot = parse(["eval", "zeroshot", "--checkpoint", "C", "--images", "I"])
    assert (zeroshot.batch_size, zeroshot.local_max_rows, zeroshot.split) == astuple_of(
        ZeroShotConfig("C", "I"), "batch_size", "local_max_rows", "split")
    with pytest.raises(SystemExit):
        parse(["eval", "zeroshot", "--help"])
    assert f"--local-max-rows rows (default {EmbedConfig.local_max_rows})" in capsys.readouterr().out


def astuple_of(cfg, *names: str) -> tuple:
    return tuple(getattr(cfg, name) for name in names)

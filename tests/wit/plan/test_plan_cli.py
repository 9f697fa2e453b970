"""`wit plan` as a user runs it."""

import json

from wit.cli import main


def test_plan_prints_every_stage_and_writes_plot_and_json(tmp_path, capsys):
    code = main(["plan", "b32-budget", "--gpu-nodes", "2", "--plot", str(tmp_path / "b.png"),
                 "--json", str(tmp_path / "p.json"), "--models", "ViT-B/32,ViT-L/14"])
    out = capsys.readouterr().out
    assert code == 0
    for stage in ("queries", "match", "balance", "download", "ingest", "train", "eval"):
        assert f"| {stage} |" in out
    assert "| ViT-L/14 |" in out and "Assumed (not measured" in out
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    stages = json.loads((tmp_path / "p.json").read_text())["stages"]
    assert stages["train"]["nodes"] == 2 and stages["train"]["gpu_hours"] > 0


def test_help_teaches_presets_and_file_keys(capsys):
    try:
        main(["plan", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    assert "paper" in out and "b32-budget" in out and "preset: paper" in out


def test_bad_input_exits_2_with_a_hint(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert "preset" in capsys.readouterr().err
    assert main(["plan", "paper", "--results", str(tmp_path)]) == 2
    assert "hint: run `python bench/" in capsys.readouterr().err

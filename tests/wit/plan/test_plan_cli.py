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


def test_plan_runs_from_the_installed_packages_alone(tmp_path):
    """No checkout: only the packages pyproject installs (with their package data), run from elsewhere.
    A figure or cluster read through the repository (bench/results, cluster/) fails here."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    site = tmp_path / "site"
    for package in ("core", "wit", "queries", "pipeline", "trainer"):  # [tool.setuptools.packages.find] include
        shutil.copytree(root / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-P", "-m", "wit.cli", "plan", "paper", "--json", "plan.json"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((tmp_path / "plan.json").read_text())["stages"]["train"]["gpu_hours"] > 0
    where = subprocess.run([sys.executable, "-P", "-c", "import wit.plan.rates as r; print(r.RESULTS_DIR)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr


def test_pyproject_ships_the_plan_data():
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["wit.plan"]
    data = root / "wit" / "plan" / "data"
    files = [str(p.relative_to(data.parent)) for p in data.rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files)

"""Regenerate SCALING.md: every table is `wit plan` output, every number in the prose is read from the
same plans (wit.plan.build.build_plan on bench/results/*.json), none is typed by hand.

    python bench/scaling.py [--check-run RUN.json --check-results DIR] [--out SCALING.md]

--check-run: the JSON of `python bench/probe.py plan-check --out RUN.json` measured on this
machine; its stage seconds go in the reality-check section next to `wit plan plan-check --results
DIR`, where DIR holds the bench/overheads.py result measured just before it (as
tests/wit/plan/test_plan_reality.py does).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PLANS = {  # name: `wit plan` arguments
    "paper": "paper --models all --plot bench/results/plan_balance_paper.png",
    "b32": "b32-budget",
    "b32_one_node": "b32-budget --gpu-nodes 1",
    "paper_10x_same": "paper --pairs 4e9 --plot bench/results/plan_balance_10x.png",
    "paper_10x": "paper --pairs 4e9 --cap 200000 --cpu-nodes 320 --gpu-nodes 40",
    "b32_10x": "b32-budget --pairs 4e9 --cap 200000 --cpu-nodes 320 --gpu-nodes 40",
}


def wit_plan(args: str) -> str:
    """The printed output of `wit plan ARGS` (run in this process, exactly as the command line)."""
    from wit.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["plan", *shlex.split(args)])
    if code:
        raise SystemExit(f"wit plan {args} failed with exit {code}")
    return out.getvalue().strip()


def plan_of(args: str):
    """The same plan as an object, for the numbers the prose quotes."""
    from wit.cli import build_parser
    from wit.plan.build import build_plan
    from wit.plan.config import load_plan_config
    from wit.plan.cli import overridden

    parsed = build_parser().parse_args(["plan", *shlex.split(args)])
    return build_plan(overridden(load_plan_config(parsed.plan), parsed))[0]


def headline(name: str, args: str, p) -> str:
    from wit.plan.report import count, duration, size

    train = p.stage("train")
    worst = max((s for s in p.stages if s.name not in ("ingest", "train")), key=lambda s: s.wall_s)
    cost = sum(s.cost or 0 for s in p.stages)
    return (f"| `wit plan {args.split(' --plot')[0]}` | {count(p.workload.corpus)} | {p.config.train.model} | "
            f"{train.nodes} x {train.node_type} | {duration(train.wall_s)} | {train.gpu_hours:,.0f} | "
            f"{worst.name} {duration(worst.wall_s)} | {duration(p.total_wall_s)} | "
            f"{size(sum(s.stored_bytes for s in p.stages))} | ${cost:,.0f} |")


def facts(plans: dict) -> dict:
    """Numbers the prose quotes, each from a plan."""
    from wit.plan.report import count, duration, size

    paper, b32, ten, ten_same = plans["paper"], plans["b32"], plans["paper_10x"], plans["paper_10x_same"]
    need = paper.training["gpus_needed"]
    bal = paper.workload.balance
    return {
        "paper_train": duration(paper.stage("train").wall_s),
        "paper_gpu_h": f"{paper.stage('train').gpu_hours:,.0f}",
        "paper_total": duration(paper.total_wall_s),
        "paper_cost": f"${sum(s.cost or 0 for s in paper.stages):,.0f}",
        "corpus_cost": f"${sum(s.cost or 0 for s in paper.stages if s.name in ('queries', 'match', 'balance', 'download')):,.0f}",
        "download": duration(paper.stage("download").wall_s),
        "download_core_h": f"{paper.stage('download').core_hours:,.0f}",
        "corpus_stored": size(paper.stage("download").stored_bytes),
        "pool": count(paper.workload.pool_rows), "matched": count(paper.workload.matched),
        "selected": count(paper.workload.selected), "saturated": f"{bal.saturated_queries:,}",
        "head_share": f"{bal.head_claims_share:.0%}",
        **_limits(paper),
        "need_off": need[(False, "fp16")], "need_on": need[(True, "fp16")],
        "gpus": paper.training["gpus"], "ckpt": "on" if paper.training["checkpointing"] else "off",
        "l14_mem": size(paper.training["memory"].total_bytes),
        "l14_states": size(paper.training["memory"].states_bytes),
        "l14_act": size(paper.training["memory"].activation_bytes),
        "b32_train": duration(b32.stage("train").wall_s), "b32_cost": f"${sum(s.cost or 0 for s in b32.stages):,.0f}",
        "b32_ingest": _cores_needed(b32),
        "b32_step": f"{b32.training['step'].seconds:.2f}",
        "ten_same_matched": count(ten_same.workload.matched),
        "ten_same_saturated": f"{ten_same.workload.balance.saturated_queries / ten_same.workload.balance.queries:.0%}",
        "ten_same_train": duration(ten_same.stage("train").wall_s),
        "ten_same_download": duration(ten_same.stage("download").wall_s),
        "ten_matched": count(ten.workload.matched), "ten_train": duration(ten.stage("train").wall_s),
        "ten_download": duration(ten.stage("download").wall_s), "ten_gpus": ten.training["gpus"],
        "ten_ckpt": "on" if ten.training["checkpointing"] else "off",
        "ten_allreduce": f"{ten.training['step'].allreduce_s / ten.training['step'].seconds:.0%}",
        "ten_local": -(-ten.config.train.global_batch // ten.training["gpus"]),
        "ten_batch_256": f"{256 * ten.training['gpus']:,}", "success": f"{paper.config.corpus.download_success:.0%}",
        "ten_stored": size(ten.stage("download").stored_bytes),
        "ten_ingest": _cores_needed(ten),
        "ten_cost": f"${sum(s.cost or 0 for s in ten.stages):,.0f}",
        "b32_decode_cores": f"{_decode_cores(b32):,.0f}", "ten_decode_cores": f"{_decode_cores(ten):,.0f}",
        "b32_10x_ingest": _cores_needed(plans["b32_10x"]),
    }


def _limits(paper) -> dict:
    """The pipeline's per-process memory (bench/scale.py's laws) and the next limit: consolidation."""
    from wit.plan.memory_law import SCALE_FILE, memory_laws
    from wit.plan.rates import RESULTS_DIR, Results
    from wit.plan.report import duration, size

    laws = memory_laws(Results(RESULTS_DIR).load(SCALE_FILE), SCALE_FILE)
    growth = {f"{stage}_{'driver' if process == 'driver' else 'worker'}_growth": f"x{law.growth:.2f}"
              for (stage, process), law in laws.items()}
    sizes = {law.rows[1] / law.rows[0] for law in laws.values() if law.stage == "match"}
    head = paper.cluster.head or paper.cluster.cpu
    stored = paper.stage("download").stored_bytes
    seconds = 2 * stored / (head.network_gbps / 8 * 1e9)            # read every staged byte, write every part
    return {**growth, "scale_span": f"{max(sizes):.0f}x", "corpus_bytes": size(stored),
            "head_node": f"{head.instance} ({head.network_gbps:g} Gbps)", "consolidate_time": duration(seconds),
            "balance_driver": size(paper.stage("balance").driver_bytes),
            "balance_worker": size(paper.stage("balance").peak_worker_bytes)}


def _cores_needed(p) -> str:
    ingest = p.stage("ingest")
    return f"{ingest.core_hours * 3600 / ingest.wall_s:,.0f} cores"


def _decode_cores(p) -> float:
    from wit.plan.model import decode_cores as cores

    return cores(p.config, p.cluster, p.training["gpus"])


def reality(run: str | None, results: str | None) -> str:
    if not run:
        return ("Not measured since the check moved to an unseen web. Run "
                "`WIT_PLAN_CHECK_KEEP=DIR pytest tests/wit/plan/test_plan_reality.py` on a quiet machine, copy DIR/run.json "
                "to bench/results/plan_check_run.json, then `python bench/scaling.py --check-run "
                "bench/results/plan_check_run.json --check-results DIR/results` (by hand: `python bench/probe.py "
                "plan-check --out RUN.json`, then `wit plan plan-check --compare RUN.json`).")
    args = f"plan-check --compare {run}" + (f" --results {results}" if results else "")
    text = wit_plan(args)
    return f"`wit plan {args}`:\n\n" + text.split("### Predicted vs measured", 1)[1].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "SCALING.md"))
    ap.add_argument("--check-run", default=None)
    ap.add_argument("--check-results", default=None)
    args = ap.parse_args()
    template = (Path(__file__).parent / "scaling_template.md").read_text()
    outputs = {name: wit_plan(a) for name, a in PLANS.items()}
    plans = {name: plan_of(a) for name, a in PLANS.items()}
    table = "\n".join(headline(n, PLANS[n], plans[n]) for n in PLANS)
    text = template.format(
        date=datetime.date.today().isoformat(), headline=table, reality=reality(args.check_run, args.check_results),
        **{f"out_{name}": _demote(out) for name, out in outputs.items()}, **facts(plans))
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


def _demote(markdown: str) -> str:
    """`wit plan` output nested under SCALING.md's sections: headings one level down."""
    return "\n".join("#" + line if line.startswith("##") else line for line in markdown.splitlines())


if __name__ == "__main__":
    main()

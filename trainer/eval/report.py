"""Results as Markdown tables: one row per metric, ready to paste into BENCHMARKS.md or an issue."""

from __future__ import annotations


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def zeroshot_markdown(result: dict) -> str:
    runs = {"ensemble": result, "single": result["single"]} if "single" in result else {"prompts": result}
    lines = ["| prompts | templates | top-1 | top-5 | images | classes | chance | skipped |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in runs.items():
        lines.append(f"| {name} | {r['templates']} | {_pct(r['top1'])} | {_pct(r['top5'])} | {r['n']} "
                     f"| {r['num_classes']} | {_pct(r['chance'])} | {r['skipped']} |")
    if "ensemble_gain_top1" in result:
        lines.append(f"\nPrompt ensembling gain (top-1): {100 * result['ensemble_gain_top1']:+.1f} points")
    return "\n".join(lines)


def retrieval_markdown(result: dict) -> str:
    ks = list(result["image_to_text"])
    lines = ["| direction | " + " | ".join(ks) + " |", "| --- |" + " ---: |" * len(ks)]
    for direction in ("image_to_text", "text_to_image"):
        lines.append(f"| {direction.replace('_', ' ')} | "
                     + " | ".join(_pct(result[direction][k]) for k in ks) + " |")
    lines.append(f"\n{result['n_images']} images, {result['n_captions']} captions, "
                 f"{result['skipped']} unreadable images skipped")
    return "\n".join(lines)


def linear_probe_markdown(result: dict) -> str:
    return "\n".join([
        "| test accuracy | lambda | C | train | val | test | classes | skipped |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {_pct(result['test_accuracy'])} | {result['lambda']:.3g} | {result['C']:.3g} | {result['n_train']} "
        f"| {result['n_val']} | {result['n_test']} | {result['num_classes']} | {result['skipped']} |"])


MARKDOWN = {"zeroshot": zeroshot_markdown, "retrieval": retrieval_markdown, "linear-probe": linear_probe_markdown}

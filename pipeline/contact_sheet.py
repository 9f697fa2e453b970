"""`wit inspect DIR --html OUT`: a contact sheet a person can open, one self-contained HTML file.

For a corpus: a grid of thumbnails (the stored JPEGs, shrunk and inlined as data URIs) with each
pair's caption, its matched queries (by name when a queries.parquet is found, else by id) and its
size. For the other stages (matched, selected, failures, queries): the same cards without images,
with the failure reason where there is one. The page starts with the summary of pipeline.inspect.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from PIL import Image
from tqdm import tqdm

from pipeline.inspect import _files, _find_queries, scan, summarize
from core import storage

THUMB_PX = 160

_CSS = """
body { font: 14px/1.35 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
h1 { font-size: 18px; margin: 0 0 4px; } .facts { color: #555; margin: 0 0 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px; overflow: hidden; }
.card img { display: block; margin: 0 auto 6px; max-width: 100%; height: 160px; object-fit: contain;
            background: #eee; }
.noimg { height: 60px; display: flex; align-items: center; justify-content: center; background: #f0f0f0;
         color: #999; margin-bottom: 6px; }
.caption { font-weight: 600; } .queries { color: #0a5; font-size: 12px; margin-top: 4px; }
.meta { color: #888; font-size: 11px; margin-top: 4px; word-break: break-all; }
.reason { color: #c33; font-weight: 600; font-size: 12px; }
"""


def _thumbnail(jpg: bytes | None) -> str | None:
    if not jpg:
        return None
    try:
        image = Image.open(io.BytesIO(jpg))
        image.thumbnail((THUMB_PX, THUMB_PX))
        buf = io.BytesIO()
        image.convert("RGB").save(buf, "JPEG", quality=80)
    except OSError:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _query_names(path: str, queries: str | None) -> dict[int, str]:
    found = _find_queries(path, queries)
    if found is None:
        return {}
    table = scan([found]).select("query_id", "query").collect()
    return dict(zip(table["query_id"].to_list(), table["query"].to_list()))


def _card(row: dict[str, Any], names: dict[int, str]) -> str:
    e = html.escape
    thumb = _thumbnail(row.get("jpg"))
    image = f'<img src="{thumb}" alt="">' if thumb else '<div class="noimg">no image</div>'
    text = row.get("caption") or row.get("text") or row.get("query") or ""
    ids = row.get("claimed_by") or row.get("query_ids") or []
    queries = ", ".join(names.get(int(q), f"#{q}") for q in ids)
    parts = [image, f'<div class="caption">{e(str(text))}</div>']
    if queries:
        parts.append(f'<div class="queries">queries: {e(queries)}</div>')
    if row.get("reason"):
        parts.append(
            f'<div class="reason">{e(row["reason"])}: {e(str(row.get("error_message") or ""))[:160]}</div>'
        )
    meta = []
    if row.get("width"):
        meta.append(f"{row['width']}×{row['height']} (was {row['original_width']}×{row['original_height']})")
    if row.get("url"):
        meta.append(e(str(row["url"])))
    if meta:
        parts.append(f'<div class="meta">{"<br>".join(meta)}</div>')
    return f'<div class="card">{"".join(parts)}</div>'


def _facts(summary: dict[str, Any]) -> str:
    facts = [f"{summary['kind']}", f"{summary['rows']:,} rows", f"{summary['files']} file(s)"]
    if summary.get("success_rate") is not None:
        facts.append(f"success rate {summary['success_rate']:.1%}")
    reasons = summary.get("failure_reasons") or {}
    if reasons:
        facts.append("failures: " + ", ".join(f"{k} {v:,}" for k, v in reasons.items()))
    return " · ".join(facts)


def write_contact_sheet(path: str, out: str, queries: str | None = None, n: int = 60) -> str:
    """The first `n` rows of a stage's output as an HTML contact sheet at `out` (a local path or a
    cloud URI); returns its path."""
    root = str(path)
    summary = summarize(path, queries=queries, n=0)
    lf = scan(_files(root))
    wanted = ["key", "url", "caption", "text", "query", "query_ids", "claimed_by", "jpg", "width", "height",
              "original_width", "original_height", "reason", "error_message"]  # fmt: skip
    columns = [c for c in wanted if c in summary["columns"]]
    rows = lf.select(columns).head(n).collect().to_dicts()
    names = _query_names(root, queries)
    cards = [
        _card(row, names) for row in tqdm(rows, desc="contact sheet", unit="row", disable=len(rows) < 200)
    ]
    title = html.escape(f"wit inspect {root}")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style>"
        f"</head><body><h1>{title}</h1><p class='facts'>{html.escape(_facts(summary))}"
        f" · showing {len(rows)}</p><div class='grid'>{''.join(cards)}</div></body></html>\n"
    )
    return storage.write_text(out, page)

"""One stage's lifecycle: reuse a finished output made from the same config and inputs, else clear it,
run the stage, and write the completion marker last.

Every stage (match, balance, download, train) answers the same question before it works: is its
directory complete (`_SUCCESS.json`), and was it made from this config and these inputs? If so the
recorded result is returned as it is; if not, the stale marker goes first (so no reader takes the
directory for complete while it is rewritten), the stage's own leftovers are cleared, the work runs,
and the marker — provenance, inputs and the result — is written last.

    result = reuse_or_run(StageRun("balance", out_dir, cfg, {"matched": input_fingerprint(parts)}),
                          work=lambda record: _balance(..., record), clear=clear_outputs)

Ground module: imports only the other ground modules (storage, artifacts, config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from core import storage
from core.artifacts import is_done, mark_done, provenance, read_json
from core.config import to_dict

MARKER = "_SUCCESS.json"


@dataclass(frozen=True)
class StageRun:
    stage: str                              # provenance name: "match", "balance", "download", "train"
    out_dir: str                            # a local path or a cloud URI
    config: Any                             # the stage's frozen config dataclass
    inputs: dict[str, Any] = field(default_factory=dict)   # what it read (e.g. input_fingerprint of files)
    result_key: str = "stats"               # where the marker keeps the stage's result


def finished(run: StageRun) -> dict[str, Any] | None:
    """The marker of a complete out_dir made from run.config and run.inputs; None if there is none,
    or if it answers another question (then the stage is redone)."""
    if not is_done(run.out_dir):
        return None
    done = read_json(storage.join(run.out_dir, MARKER))
    if done.get("config") == to_dict(run.config) and done.get("inputs") == run.inputs and run.result_key in done:
        return done
    print(f"{run.stage}: {run.out_dir} was made from other inputs or another config; recomputing it")
    return None


def reuse_or_run(run: StageRun, work: Callable[[dict[str, Any]], Any],
                 clear: Callable[[str], None] | None = None) -> Any:
    """The recorded result of a finished run.out_dir, else `work(record)`'s after a fresh run.

    `work` gets the provenance record (stage, config, inputs, versions) to put in what it writes and
    returns the stage's result (JSON-ready). `clear(out_dir)` removes what an earlier or interrupted
    run left; None keeps it (download reuses its finished shards). The marker is written last.
    """
    done = finished(run)
    if done is not None:
        return done[run.result_key]
    storage.makedirs(run.out_dir)           # a missing bucket fails here, before any work
    storage.remove(storage.join(run.out_dir, MARKER))   # a stale marker must not outlive the rewrite
    if clear is not None:
        clear(run.out_dir)
    record = provenance(run.stage, run.config, inputs=run.inputs)
    result = work(record)
    mark_done(run.out_dir, {**record, run.result_key: result})
    return result

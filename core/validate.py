"""Input checks at the boundary of every subcommand: bad input fails here, before Ray starts, a model
is built or data is read, with a message that names the input and says what to fix (exit 2).

Each check reads as little as it can: a listing, a Parquet footer (schema and row count, never the
data), a few magic bytes, the environment. A check that passes leaves nothing behind, so a command
that fails here has written no output, and nothing looks complete.

Malformed rows inside otherwise good inputs are not bad input: the stages count them with a reason
(pool rows) or skip them with a count (undecodable JPEGs in training). These checks are about the
inputs as a whole: a path that is missing, empty, of the wrong kind, unfinished or without the
contract's columns, a number out of range, a bucket URI with no credentials to read it.

Ground module: imports nothing of ours but core.errors and core.storage.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from core import storage
from core.errors import WitError

MARKER = "_SUCCESS.json"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Where the AWS SDK finds credentials without asking the network (the instance role is the one place
# that needs the network, and AWS_EC2_METADATA_DISABLED=true rules it out).
_AWS_ENV = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_PROFILE",), ("AWS_WEB_IDENTITY_TOKEN_FILE",),
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",), ("AWS_CONTAINER_CREDENTIALS_FULL_URI",))
_AWS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run where an instance role "
             "is reachable); for an S3-compatible server also AWS_ENDPOINT_URL_S3=http://host:port")


# ---------------------------------------------------------------------------------------------
# Paths


def check_credentials(path: str | os.PathLike) -> None:
    """A bucket URI needs a known scheme and credentials the SDK can find; checked without any network
    call, so a missing key fails in milliseconds instead of after the SDK's retries. Local paths pass."""
    found = _SCHEME.match(str(path))
    if not found or found.group(1).lower() == "file":
        return
    scheme = found.group(1).lower()
    if scheme not in storage.CLOUD_SCHEMES:
        raise WitError(f"unknown storage scheme {scheme}:// in {path}", hint=storage.URI_HINT)
    if scheme == "s3" and not _aws_credentials_known():
        raise WitError(f"no AWS credentials to read or write {path}", hint=_AWS_HINT)
    google = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if scheme in ("gs", "gcs") and google and not Path(google).is_file():
        raise WitError(f"GOOGLE_APPLICATION_CREDENTIALS names no file ({google}), needed for {path}",
                       hint="point it at a service-account key file, or unset it to use the VM's account")


def _aws_credentials_known() -> bool:
    if any(all(os.environ.get(name) for name in names) for names in _AWS_ENV):
        return True
    files = (os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
             os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"))
    if any(Path(f).expanduser().is_file() for f in files):
        return True
    # An instance role is only known by asking the metadata endpoint: unless that is switched off, let the SDK.
    return os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true"


def check_exists(path: str | os.PathLike, what: str, hint: str = "") -> None:
    check_credentials(path)
    if not storage.exists(path):
        raise WitError(f"{what} {storage.display(path)} does not exist", hint=hint or "check the path")


def check_file(path: str | os.PathLike, what: str, hint: str = "") -> None:
    check_exists(path, what, hint)
    if not storage.is_file(path):
        raise WitError(f"{what} {storage.display(path)} is a directory, not a file", hint=hint)


def check_dir(path: str | os.PathLike, what: str, hint: str = "") -> list[tuple[str, bool]]:
    """The entries of a directory that exists and holds something: (path, is_dir) each."""
    check_exists(path, what, hint)
    if not storage.is_dir(path):
        raise WitError(f"{what} {storage.display(path)} is a file, not a directory", hint=hint)
    entries = storage.listdir(path)
    if not entries:
        raise WitError(f"{what} {storage.display(path)} is an empty directory", hint=hint)
    return entries


def check_magic(path: str | os.PathLike, magic: bytes, what: str, kind: str, hint: str = "") -> None:
    """The file starts with `magic` (a format's signature, e.g. b'BZh' for bz2): a wrong file type
    fails here, not in a Ray task halfway through."""
    check_file(path, what, hint)
    with storage.open_input_stream(path) as f:
        head = f.read(len(magic))
    if head != magic:
        raise WitError(f"{what} {storage.display(path)} is not {kind} (it starts with {head[:8]!r})", hint=hint)


def check_output(path: str | os.PathLike, what: str, directory: bool = True) -> None:
    """An output location can be written: a URI with credentials, or a local path whose nearest
    existing ancestor is a directory and which is not itself of the wrong kind."""
    check_credentials(path)
    if storage.is_uri(path):
        return
    local = Path(path).absolute()
    if directory and local.is_file():
        raise WitError(f"{what} {local} is a file; a directory is needed here", hint="pass a directory path")
    if not directory and local.is_dir():
        raise WitError(f"{what} {local} is a directory; a file path is needed here", hint="pass a file path")
    ancestor = local.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise WitError(f"{what} {local} lies under {ancestor}, which is a file", hint="pass a path in a directory")


# ---------------------------------------------------------------------------------------------
# Parquet and stage directories


def check_parquet(path: str | os.PathLike, what: str, hint: str = "") -> pa.Schema:
    """The schema of one Parquet file, from its footer only (no data read)."""
    try:
        with storage.open_input_file(path) as f:
            return pq.ParquetFile(f).schema_arrow
    except WitError:
        raise
    except (pa.ArrowException, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WitError(f"{what} {storage.display(path)} is not a readable Parquet file ({reason})",
                       hint=hint or "replace or remove the file") from err


def check_columns(path: str | os.PathLike, required: Sequence[str], what: str, hint: str = "") -> pa.Schema:
    """The file is Parquet and holds every column in `required`; the message names the missing ones."""
    schema = check_parquet(path, what, hint)
    missing = [c for c in required if c not in schema.names]
    if missing:
        raise WitError(f"{what} {storage.display(path)} lacks column(s) {', '.join(missing)} "
                       f"(its columns: {', '.join(schema.names) or 'none'})", hint=hint)
    return schema


def check_parts(directory: str | os.PathLike, pattern: str, required: Sequence[str], what: str,
                hint: str = "") -> list[str]:
    """Every `pattern` file directly under `directory` is Parquet with the `required` columns; at least
    one exists. Footers are read in parallel (a bucket answers each in a round trip)."""
    parts = storage.glob(directory, pattern)
    if not parts:
        raise WitError(f"{what} {storage.display(directory)} holds no {pattern} files", hint=hint)
    with ThreadPoolExecutor(max_workers=min(16, len(parts))) as pool:
        list(pool.map(lambda p: check_columns(p, required, f"{what} part", hint), parts))
    return parts


def check_stage_dir(directory: str | os.PathLike, what: str, producer: str, required: Sequence[str] = (),
                    pattern: str = "part-*.parquet") -> list[str]:
    """A finished stage directory: it exists, holds files, ends with _SUCCESS.json (written last, so an
    interrupted stage never passes), and its parts have the contract's columns. Returns the parts."""
    check_dir(directory, what, hint=f"run `{producer}` to make it")
    if not storage.is_file(storage.join(directory, MARKER)):
        raise WitError(f"{what} {storage.display(directory)} is unfinished: it has no {MARKER}",
                       hint=f"rerun `{producer}` until it completes (it resumes finished work)")
    return check_parts(directory, pattern, required, what,
                       hint=f"this part was not written by `{producer}`, or was damaged since: rerun it into a "
                            "new directory")


# ---------------------------------------------------------------------------------------------
# Numbers and names


def check_at_least(values: Mapping[str, float | int | None], minimum: float) -> None:
    """Each named value (None: not given) is at least `minimum`; names are as the user wrote them."""
    for name, value in values.items():
        if value is not None and value < minimum:
            raise WitError(f"{name} must be at least {minimum:g}, not {value:g}", hint=f"pass {name} {minimum:g} or more")


def check_positive(values: Mapping[str, float | int | None]) -> None:
    """Each named value (None: not given) is above zero: a size, a count of nodes, a factor."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise WitError(f"{name} must be above 0, not {value:g}", hint=f"pass a positive {name}")


def check_between(name: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise WitError(f"{name} must lie in [{low:g}, {high:g}], not {value:g}", hint=f"pass {name} between {low:g} and {high:g}")


def check_choice(name: str, value: str | None, choices: Iterable[str], what: str = "") -> None:
    known = list(choices)
    if value is not None and value not in known:
        raise WitError(f"unknown {what or name} {value!r}", hint=f"{name}: one of {', '.join(known)}")


def check_local_output(path: str | os.PathLike, name: str, what: str) -> None:
    """An output that must be a local directory (tools that need a real disk)."""
    if storage.is_uri(path):
        raise WitError(f"{what} writes a local directory, not {path} ({name})", hint="pass a local path")
    check_output(path, name)

"""Local paths and cloud URIs (`s3://`, `gs://`) behind one small set of operations (pyarrow filesystems).

Every stage takes its inputs and outputs as strings that are local paths or URIs, so a job on a
cluster reads and writes a bucket and needs no shared disk. Paths stay strings: a local path keeps its
form (relative stays relative), a URI keeps its scheme, and both are joined with `join`.

Atomicity: a local file is written under a temporary name and renamed, as before. Object stores have
no rename, but a single PUT is atomic there (a reader sees the old object, or none, or the whole new
one), so the final key is written directly. Completeness of a directory is signalled only by its
`_SUCCESS.json`, which every stage writes last, on both.

Endpoints and credentials come from the environment, read by pyarrow (and by every Ray worker that
inherits it): for S3, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or the instance
role) and, for an S3-compatible server (MinIO, moto, Ceph), AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL;
for GCS, GOOGLE_APPLICATION_CREDENTIALS or the VM's service account.
"""

from __future__ import annotations

import fnmatch
import io
import functools
import hashlib
import os
import posixpath
import re
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from core.errors import WitError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# The schemes pyarrow.fs.FileSystem.from_uri turns into a filesystem we can use.
CLOUD_SCHEMES = ("s3", "gs", "gcs")
# Environment that changes what a filesystem object talks to: part of the cache key, so a test (or a
# notebook) that points the variables elsewhere gets a new client instead of a stale one.
_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION")
URI_HINT = "use a local path, s3://bucket/prefix or gs://bucket/prefix"


def is_uri(path: str | os.PathLike) -> bool:
    """True for `scheme://...` other than file:// (which is a local path)."""
    found = _SCHEME.match(str(path))
    return bool(found) and found.group(1).lower() != "file"


def _local(path: str | os.PathLike) -> str:
    text = str(path)
    return text[len("file://"):] if text.lower().startswith("file://") else text


def _split(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b/' -> ('s3', 'bucket/a/b')."""
    scheme = _SCHEME.match(uri).group(1).lower()
    rest = uri[len(scheme) + 3:]
    if "?" in rest:
        raise WitError(f"URI options are not supported: {uri}",
                       hint="drop the ?... part; endpoints and regions come from the environment "
                            "(AWS_ENDPOINT_URL_S3, AWS_REGION)")
    path = posixpath.normpath(rest).strip("/") if rest.strip("/") else ""
    if scheme not in CLOUD_SCHEMES:
        raise WitError(f"unknown storage scheme {scheme}:// in {uri}", hint=URI_HINT)
    if not path:
        raise WitError(f"{uri} names no bucket", hint=URI_HINT)
    return scheme, path


@functools.lru_cache(maxsize=32)
def _filesystem(scheme: str, bucket: str, env: tuple) -> pafs.FileSystem:
    try:
        fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{bucket}")
    except Exception as err:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError for the same user error
        raise WitError(f"cannot open {scheme}://{bucket}: {err}", hint=_credentials_hint(scheme)) from err
    return fs


def resolve(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it): a LocalFileSystem and an absolute path, or a cloud filesystem and
    'bucket/key'. Filesystems are cached per bucket and environment."""
    text = str(path)
    if not is_uri(text):
        return pafs.LocalFileSystem(), os.path.abspath(_local(text))
    scheme, inner = _split(text)
    env = tuple(os.environ.get(k) for k in _ENV)
    return _filesystem(scheme, inner.split("/", 1)[0], env), inner


def join(base: str | os.PathLike, *names: str) -> str:
    """`base/name/...` for a local path (os.path) or a URI (always '/')."""
    text = str(base)
    if is_uri(text):
        return "/".join([text.rstrip("/"), *(n.strip("/") for n in names)])
    return str(Path(_local(text)).joinpath(*names))


def parent(path: str | os.PathLike) -> str:
    text = str(path)
    if is_uri(text):
        scheme, inner = _split(text)
        head = posixpath.dirname(inner)
        return f"{scheme}://{head or inner}"
    return str(Path(_local(text)).parent)


def name(path: str | os.PathLike) -> str:
    text = str(path)
    return posixpath.basename(text.rstrip("/")) if is_uri(text) else Path(_local(text)).name


def display(path: str | os.PathLike) -> str:
    """What a record or a message should call the path: a URI as given, a local path made absolute."""
    return str(path) if is_uri(path) else os.path.abspath(_local(path))


# ---------------------------------------------------------------------------------------------
# Queries


def _info(path: str | os.PathLike) -> pafs.FileInfo:
    fs, inner = resolve(path)
    with storage_errors(path):
        return fs.get_file_info(inner)


def exists(path: str | os.PathLike) -> bool:
    return _info(path).type != pafs.FileType.NotFound


def is_file(path: str | os.PathLike) -> bool:
    return _info(path).type == pafs.FileType.File


def is_dir(path: str | os.PathLike) -> bool:
    """On object stores a 'directory' is a prefix that holds objects (or an empty marker)."""
    return _info(path).type == pafs.FileType.Directory


def size(path: str | os.PathLike) -> int:
    return _info(path).size


def stat(path: str | os.PathLike) -> tuple[int, int]:
    """(bytes, mtime in ns); the mtime of an object is its upload time."""
    info = _info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(str(path))
    return info.size, info.mtime_ns or 0


def listdir(directory: str | os.PathLike) -> list[tuple[str, bool]]:
    """(path, is_dir) of the entries directly under `directory`, sorted by name; [] when it is missing
    or is a file (as pathlib's glob)."""
    fs, inner = resolve(directory)
    try:
        with storage_errors(directory):
            infos = fs.get_file_info(pafs.FileSelector(inner, allow_not_found=True))
    except NotADirectoryError:
        return []
    return [(join(directory, i.base_name), i.type == pafs.FileType.Directory)
            for i in sorted(infos, key=lambda i: i.base_name)]


def glob(directory: str | os.PathLike, pattern: str, dirs: bool = False) -> list[str]:
    """The files (or, with dirs=True, the subdirectories) directly under `directory` whose name
    matches `pattern` (fnmatch, e.g. 'part-*.parquet'), sorted; not recursive."""
    return [p for p, is_directory in listdir(directory)
            if is_directory == dirs and fnmatch.fnmatchcase(name(p), pattern)]


def walk_files(directory: str | os.PathLike) -> list[tuple[str, int]]:
    """(path, bytes) of every file under `directory`, recursively."""
    fs, inner = resolve(directory)
    with storage_errors(directory):
        infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True, allow_not_found=True))
    return [(join(directory, posixpath.relpath(i.path, inner) if is_uri(directory)
                  else os.path.relpath(i.path, inner)), i.size)
            for i in infos if i.type == pafs.FileType.File]


# ---------------------------------------------------------------------------------------------
# Reading and writing


def makedirs(directory: str | os.PathLike) -> None:
    """Create `directory` (local) or check that its bucket exists (object stores have no directories)."""
    if is_uri(directory):
        fs, inner = resolve(directory)
        with storage_errors(directory):
            bucket = fs.get_file_info(inner.split("/", 1)[0])
        if bucket.type == pafs.FileType.NotFound:
            raise bucket_missing(str(directory))
        return
    Path(_local(directory)).mkdir(parents=True, exist_ok=True)


def open_input_file(path: str | os.PathLike):
    """A seekable binary file (Parquet footers, bz2 byte ranges)."""
    fs, inner = resolve(path)
    with storage_errors(path):
        return fs.open_input_file(inner)


def open_input_stream(path: str | os.PathLike):
    fs, inner = resolve(path)
    with storage_errors(path):
        return fs.open_input_stream(inner, compression=None)


def read_bytes(path: str | os.PathLike) -> bytes:
    with open_input_stream(path) as f:
        return f.read()


def read_text(path: str | os.PathLike) -> str:
    return read_bytes(path).decode("utf-8")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[tuple[pafs.FileSystem, str]]:
    """(filesystem, path to write): locally a temporary name renamed to `path` on success, and removed
    on failure; on an object store `path` itself (one PUT, visible only when complete)."""
    if is_uri(path):
        fs, inner = resolve(path)
        with storage_errors(path):
            yield fs, inner
        return
    final = Path(_local(path))
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield pafs.LocalFileSystem(), str(tmp.absolute())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> str:
    with atomic_output(path) as (fs, inner), fs.open_output_stream(inner, compression=None) as out:
        out.write(data)
    return str(path)


def write_text(path: str | os.PathLike, text: str) -> str:
    return write_bytes(path, text.encode("utf-8"))


def remove(path: str | os.PathLike) -> None:
    """Delete one file; a missing one is fine."""
    fs, inner = resolve(path)
    with storage_errors(path):
        if fs.get_file_info(inner).type == pafs.FileType.File:
            fs.delete_file(inner)


def remove_tree(directory: str | os.PathLike) -> None:
    """Delete a directory and everything under it; a missing one is fine."""
    fs, inner = resolve(directory)
    with storage_errors(directory):
        if fs.get_file_info(inner).type == pafs.FileType.Directory:
            fs.delete_dir(inner)


def copy_tree(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Copy every file under `source` to the same relative path under `destination` (any two places)."""
    src_fs, src = resolve(source)
    dst_fs, dst = resolve(destination)
    if not is_uri(destination):
        Path(dst).mkdir(parents=True, exist_ok=True)
    with storage_errors(destination):
        pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs)


def scratch_dir(path: str | os.PathLike, what: str) -> Path:
    """A node-local directory standing in for a remote `path` (the same on every process of a node),
    for tools that need a real disk: img2dataset's work files, a run's live metrics, a checkpoint
    read for eval."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "wit-scratch" / f"{what}-{digest}"


# ---------------------------------------------------------------------------------------------
# Errors a user can act on


def _credentials_hint(scheme: str) -> str:
    if scheme == "s3":
        return ("set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role); for an "
                "S3-compatible server also AWS_ENDPOINT_URL_S3=http://host:port")
    return "set GOOGLE_APPLICATION_CREDENTIALS or run on a VM with a service account"


def bucket_missing(uri: str) -> WitError:
    scheme, inner = _split(uri)
    bucket = f"{scheme}://{inner.split('/', 1)[0]}"
    return WitError(f"bucket {bucket} does not exist (for {uri})",
                    hint=f"create it first (aws s3 mb {bucket} / gcloud storage buckets create {bucket}) "
                         "or fix the URI")


def as_wit_error(err: BaseException, where: str | os.PathLike | None = None) -> WitError | None:
    """A user error for the storage failures a user can fix (missing bucket, credentials, access),
    or None for anything else."""
    text = str(err)
    lowered = text.lower()
    place = f" ({where})" if where else ""
    scheme = _SCHEME.match(str(where)).group(1).lower() if where and _SCHEME.match(str(where)) else "s3"
    if "bucket" in lowered and ("not found" in lowered or "does not exist" in lowered
                                or "nosuchbucket" in lowered):
        return WitError(f"bucket not found{place}: {text.splitlines()[0]}",
                        hint="create the bucket first or fix the URI")
    if any(s in lowered for s in ("credentials", "access denied", "accessdenied", "forbidden",
                                  "invalidaccesskeyid", "signaturedoesnotmatch", "http status 403")):
        return WitError(f"no access to storage{place}: {text.splitlines()[0]}",
                        hint=_credentials_hint(scheme))
    return None


@contextmanager
def storage_errors(where: str | os.PathLike) -> Iterator[None]:
    """Turn a cloud storage OSError a user can fix into a WitError naming the path; others pass."""
    try:
        yield
    except OSError as err:
        if not is_uri(where):
            raise
        wit_error = as_wit_error(err, where)
        if wit_error is None:
            raise
        raise wit_error from err


def for_ray_data(paths: list[str]) -> tuple[list[str], pafs.FileSystem | None]:
    """(paths, filesystem) for `ray.data.read_*(paths, filesystem=...)`: local paths as they are (Ray's
    default), URIs as paths inside our filesystem, so Ray Data reads them with the same client."""
    if not any(is_uri(p) for p in paths):
        return list(paths), None
    if not all(is_uri(p) for p in paths):
        raise WitError("inputs mix local paths and URIs", hint="put them all in one place")
    resolved = [resolve(p) for p in paths]
    return [inner for _, inner in resolved], resolved[0][0]


def read_table(path: str | os.PathLike, **kwargs) -> pa.Table:
    """One Parquet file, local or at a URI, as a table (kwargs: pyarrow.parquet.read_table's)."""
    with open_input_file(path) as f:
        return pq.read_table(f, **kwargs)


def num_rows(path: str | os.PathLike) -> int:
    """Rows of one Parquet file, from its footer only."""
    with open_input_file(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


def open_binary(path: str | os.PathLike):
    """A seekable binary file: Python's own for a local path (exactly as before), pyarrow's for a URI
    (ranged reads: a Ray task reads only its byte range of a multi-GB dump)."""
    return open_input_file(path) if is_uri(path) else open(_local(path), "rb")


def open_text(path: str | os.PathLike):
    """A UTF-8 text file to iterate over by lines, local or at a URI."""
    if not is_uri(path):
        return open(_local(path), encoding="utf-8")
    return io.TextIOWrapper(io.BufferedReader(open_input_stream(path)), encoding="utf-8")

"""The output location: a local directory or any fsspec URL (s3://, gs://, memory://).

Everything a run produces goes through `OutputLocation`, which refuses any path that would escape
its root and writes every file so that a reader sees either the old or the whole new content:
a temporary name and a rename on local disks, a single PUT on object stores.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


class UnsafePathError(ValueError):
    """A relative path would leave the output location."""


def safe_relpath(rel: str) -> str:
    """Normalize `rel` to a POSIX relative path that stays inside its root, or raise UnsafePathError."""
    if not rel or "\x00" in rel or "\\" in rel:
        raise UnsafePathError(f"unsafe path {rel!r}: empty, NUL or backslash")
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise UnsafePathError(f"unsafe path {rel!r}: absolute paths are not allowed")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"unsafe path {rel!r}: empty, '.' or '..' segments are not allowed")
    return posixpath.normpath(rel)


class OutputLocation:
    """A directory-like place for images, manifests and row records.

    `url` is a local path or an fsspec URL; `storage_options` go to fsspec (for example
    `{"endpoint_url": ..., "key": ..., "secret": ...}` for S3). Credentials in `storage_options` are
    never written into any output.
    """

    def __init__(self, url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> None:
        text = os.fspath(url)
        self.storage_options = dict(storage_options or {})
        self._staging: Path | None = None
        if "://" in text and not text.startswith("file://"):
            fs, root = fsspec.core.url_to_fs(text, **self.storage_options)
            self.fs = fs
            self.root = root.rstrip("/")
            self.url = text.rstrip("/")
            self.is_local = isinstance(fs, LocalFileSystem)
        else:
            local = Path(text.removeprefix("file://")).expanduser().resolve()
            self.fs = LocalFileSystem(auto_mkdir=True)
            self.root = str(local)
            self.url = str(local)
            self.is_local = True

    def __repr__(self) -> str:
        return f"OutputLocation({self.url!r})"

    # --- paths ---------------------------------------------------------------------------------
    def full_path(self, rel: str) -> str:
        """The filesystem path of `rel` inside the root (refuses escapes)."""
        return f"{self.root}/{safe_relpath(rel)}"

    def full_url(self, rel: str) -> str:
        """What a user can open: the local path, or the fsspec URL, of `rel`."""
        return f"{self.url}/{safe_relpath(rel)}"

    def relative(self, path: str) -> str | None:
        """The relative path of `path` (a URL or filesystem path inside this location), else None."""
        for prefix in (self.url + "/", self.root + "/"):
            if path.startswith(prefix):
                return path[len(prefix) :]
        return None

    def local_path(self, rel: str) -> Path:
        if not self.is_local:
            raise ValueError(f"{self.url} is not a local directory")
        return Path(self.full_path(rel))

    # --- reading -------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.full_path(rel)))

    def read_bytes(self, rel: str) -> bytes:
        return bytes(self.fs.cat_file(self.full_path(rel)))

    def read_many(self, rels: Iterable[str]) -> dict[str, bytes]:
        """Read several small files at once (object stores fetch them concurrently)."""
        paths = {self.full_path(r): r for r in rels}
        if not paths:
            return {}
        got = self.fs.cat(list(paths), on_error="omit")
        if isinstance(got, bytes):  # a single path returns bytes
            got = {next(iter(paths)): got}
        return {paths[p]: data for p, data in got.items() if isinstance(data, bytes)}

    def list_files(self, rel_dir: str = "") -> list[str]:
        """Relative paths of every file below `rel_dir` (recursive); empty if it does not exist."""
        base = self.full_path(rel_dir) if rel_dir else self.root
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        prefix = self.root + "/"
        return sorted(p[len(prefix) :] for p in found if p.startswith(prefix))

    # --- writing -------------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> str:
        """Write `data` whole (temporary name + rename locally, one PUT remotely); return the URL."""
        path = self.full_path(rel)
        if self.is_local:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            self.fs.pipe_file(path, data)
        return self.full_url(rel)

    def write_text(self, rel: str, text: str) -> str:
        return self.write_bytes(rel, text.encode("utf-8"))

    def put_file(self, local: Path, rel: str) -> str:
        """Move a finished local file into the location (rename when local, upload then delete when not)."""
        path = self.full_path(rel)
        if self.is_local:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            if local.resolve() != target:
                try:
                    os.replace(local, target)
                except OSError:  # another device: copy to a temporary name, then rename
                    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
                    shutil.copyfile(local, tmp)
                    os.replace(tmp, target)
                    local.unlink(missing_ok=True)
        else:
            self.fs.put_file(str(local), path)
            local.unlink(missing_ok=True)
        return self.full_url(rel)

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm_file(self.full_path(rel))
        except FileNotFoundError:
            pass

    def staging_dir(self) -> Path:
        """Where downloads land before they are moved in: beside the images when local (so the final
        step is a rename), a private temporary directory otherwise."""
        if self.is_local:
            path = Path(self.root) / ".nanobanana" / "staging"
            path.mkdir(parents=True, exist_ok=True)
            return path
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="nanobanana-staging-"))
        return self._staging

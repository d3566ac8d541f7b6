"""Where a Label Studio task's photo comes from, for the ML backend: a file under the document root, or
Label Studio itself. Nothing else is read and the access token goes nowhere else.

    images = TaskImages(document_root="/srv/photos", label_studio_url="http://ls:8080")
    images.connect("http://ls:8080", token)          # what /setup gave (the operator's URL, if set, wins)
    data = images.read(task, max_bytes=10_000_000)    # bytes, or TaskImageRefused (one line, the task named)

Local files: `/data/local-files/?d=PATH` (relative or absolute URL), PATH relative to the document root;
after links are followed the file must lie inside the root. A path outside it, missing or unreadable
gets one and the same answer, so that the backend tells nothing of the host's files. Remote photos
(uploads, `/data/upload/...`): only from the Label Studio origin (scheme, host and port) that the
operator set (`--label-studio-url`) or /setup gave, with the token, within one deadline, no redirect
followed, at most `max_bytes`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.download.http_get import FetchFailed, fetch
from fashionstyle.data.labels.label_studio import TO_NAME

DOWNLOAD_DEADLINE_S = 20.0  # for the whole download of one photo: connecting, headers and body
LOCAL_FILES_PATH = "/data/local-files/"


class TaskImageRefused(FashionStyleError):
    """A task's photo cannot be used; the message names the task."""


def origin(url: str) -> str:
    """'scheme://host:port' of an http(s) URL (the default port made explicit), or '' for anything else."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:  # a port that is not a number
        return ""
    return f"{parts.scheme.lower()}://{parts.hostname.lower()}:{port}"


def checked_origin(url: str, what: str) -> str:
    """The origin of a Label Studio URL the operator or /setup gives; FashionStyleError for anything else."""
    found = origin(url)
    if not found:
        raise FashionStyleError(f"{what} {url!r} is not an http(s) URL (e.g. http://localhost:8080)")
    return found


class TaskImages:
    """The photos of tasks: local files under `document_root`, else downloads from Label Studio."""

    def __init__(self, document_root: str | Path | None = None, label_studio_url: str | None = None):
        self.root = _checked_root(document_root) if document_root is not None else None
        self.fixed_origin = checked_origin(label_studio_url, "--label-studio-url") if label_studio_url else ""
        self.origin, self.token = self.fixed_origin, ""

    def connect(self, hostname: str, token: str) -> None:
        """What /setup gave: Label Studio's address (ignored when the operator set one) and access token."""
        self.origin, self.token = self.fixed_origin or origin(hostname), token

    def read(self, task: dict[str, Any], max_bytes: int) -> bytes:
        """The bytes of `task`'s photo, or TaskImageRefused naming the task."""
        where = f"task {task.get('id', '?')}"
        data = task.get("data")
        if not isinstance(data, dict):
            raise TaskImageRefused(f"{where}: data is not an object")
        url = data.get(TO_NAME)
        if not isinstance(url, str) or not url.strip():
            raise TaskImageRefused(f"{where}: has no image (data key {TO_NAME!r})")
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in ("", "http", "https"):  # file:, ftp:, ...: a path by another name
            raise _not_under_root(where, url)
        if parts.path == LOCAL_FILES_PATH and parts.query:
            return self._local(where, parts.query, max_bytes)
        return self._remote(where, url.strip(), max_bytes)

    def _local(self, where: str, query: str, max_bytes: int) -> bytes:
        names = parse_qs(query).get("d") or [""]
        refused = _not_under_root(where, names[0])
        if self.root is None:
            raise TaskImageRefused(f"{where}: a local file, but the backend has no document root "
                                   "(serve ... --label-studio DOCUMENT_ROOT)")
        if not names[0] or os.path.isabs(names[0]) or "\0" in names[0]:
            raise refused
        path = os.path.realpath(os.path.join(self.root, names[0]))
        if os.path.commonpath([path, self.root]) != self.root or not os.path.isfile(path):
            raise refused
        try:
            with open(path, "rb") as file:
                data = file.read(max_bytes + 1)
        except OSError:
            raise refused from None
        if len(data) > max_bytes:
            raise TaskImageRefused(f"{where}: image too large (over {max_bytes:,} bytes, --max-bytes)")
        return data

    def _remote(self, where: str, url: str, max_bytes: int) -> bytes:
        if not self.origin:
            raise TaskImageRefused(f"{where}: image {url!r} is not under the document root and no Label Studio "
                                   "is connected (/setup) or set (--label-studio-url)")
        full = urljoin(self.origin + "/", url)
        if origin(full) != self.origin:
            raise TaskImageRefused(f"{where}: image {url!r} is not on the Label Studio this backend serves "
                                   f"({self.origin}); other hosts are never fetched")
        headers = {"Authorization": f"Token {self.token}"} if self.token else {}
        try:
            return fetch(full, DOWNLOAD_DEADLINE_S, headers=headers, max_bytes=max_bytes, redirects=False)
        except FetchFailed as err:
            raise TaskImageRefused(f"{where}: could not read image {url!r} ({err.reason})") from None


def _not_under_root(where: str, name: str) -> TaskImageRefused:
    """The one refusal for a path outside the root, missing, unreadable or not a file: it tells nothing."""
    return TaskImageRefused(f"{where}: image {name!r} is not a readable file under the document root")


def _checked_root(document_root: str | Path) -> str:
    """The document root, links followed; one line when it is not a folder."""
    root = os.path.realpath(os.fspath(document_root))
    if not os.path.isdir(root):
        raise FashionStyleError(f"--label-studio {document_root}: not a folder (Label Studio's "
                                "LOCAL_FILES_DOCUMENT_ROOT, the folder its local-files storage lies under)")
    return root

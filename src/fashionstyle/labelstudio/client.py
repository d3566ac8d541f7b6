"""A Label Studio project read through its HTTP API: its labelling config and its export, for `fashionstyle round`.

    project = Project("http://localhost:8080", 1)            # token: $LABEL_STUDIO_API_KEY
    project.check_labels(["Red", "Striped", "Dotted"])       # its choices must be the run's labels
    project.download_export(Path("runs/round2.round/export.json"))

The token is the one of Account & Settings: a legacy token (`Authorization: Token ...`, Label Studio started
with LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true) or a personal access token (a JWT, exchanged at
/api/token/refresh for a short-lived access token). Every failure a user can cause is one line: the server not
reachable, the token refused (401/403), no such project (404), an answer that is not Label Studio's.
Redirects are not followed: the token goes to the given address and nowhere else.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Sequence

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.labelstudio.tasks import check_schema

TOKEN_ENV = "LABEL_STUDIO_API_KEY"  # the variable label-studio-sdk reads too
TIMEOUT_S = 300.0  # a large project's export takes a while to build


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        raise urllib.error.HTTPError(req.full_url, code, f"redirected to {newurl}; not followed", headers, fp)


_OPENER = urllib.request.build_opener(_NoRedirect)


def api_token(token: str | None = None) -> str:
    """`token`, else $LABEL_STUDIO_API_KEY; refused in one line when neither is set."""
    token = token or os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise FashionStyleError(f"no Label Studio token: set {TOKEN_ENV} to the access token of Label Studio's "
                                "Account & Settings")
    return token.strip()


class Project:
    """One project of the Label Studio at `url` (scheme, host, port), read with `token`."""

    def __init__(self, url: str, project: int, token: str | None = None, timeout: float = TIMEOUT_S):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise FashionStyleError(f"--label-studio {url!r}: give Label Studio's address, e.g. http://localhost:8080")
        self.url, self.project, self.timeout = url.rstrip("/"), project, timeout
        self.token = api_token(token)
        self._header: str | None = None

    def label_config(self) -> str:
        """The project's labelling config (XML)."""
        answer = json.loads(self._get(f"/api/projects/{self.project}"))
        if not isinstance(answer, dict) or not isinstance(answer.get("label_config"), str):
            raise FashionStyleError(f"{self.url}: project {self.project} came without a labelling config; "
                                    "is this Label Studio?")
        return answer["label_config"]

    def check_labels(self, label_names: Sequence[str]) -> None:
        """Refuse a project whose "style" choices are not exactly `label_names`, naming the project."""
        try:
            check_schema(self.label_config(), list(label_names))
        except FashionStyleError as err:
            raise FashionStyleError(f"{self.url} project {self.project}: {err}") from None

    def download_export(self, out: Path) -> Path:
        """The project's JSON export (its annotated tasks), written to `out` as it came."""
        data = self._get(f"/api/projects/{self.project}/export?exportType=JSON")
        try:
            tasks = json.loads(data)
        except ValueError:
            tasks = None
        if not isinstance(tasks, list):
            raise FashionStyleError(f"{self.url}: the export of project {self.project} is not a JSON list of tasks")
        atomic.write_atomic(out, lambda f: f.write(data))
        return out

    def _get(self, path: str) -> bytes:
        return self._request(path, headers={"Authorization": self._authorization()})

    def _authorization(self) -> str:
        """`Token T` for a legacy token; for a personal access token (a JWT), `Bearer` and its access token."""
        if self._header is None:
            if self.token.count(".") != 2:
                self._header = f"Token {self.token}"
            else:
                body = json.dumps({"refresh": self.token}).encode()
                answer = json.loads(self._request("/api/token/refresh", body=body))
                self._header = f"Bearer {answer.get('access', '') if isinstance(answer, dict) else ''}"
        return self._header

    def _request(self, path: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(self.url + path, data=body, headers={
            "Accept": "application/json", **({"Content-Type": "application/json"} if body else {}), **(headers or {})})
        try:
            with _OPENER.open(request, timeout=self.timeout) as answer:
                return answer.read()
        except urllib.error.HTTPError as err:
            raise FashionStyleError(self._refused(err.code, str(err.reason))) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise FashionStyleError(f"{self.url}: Label Studio not reachable ({reason}); is it running there "
                                    "(label-studio start)?") from None

    def _refused(self, code: int, reason: str) -> str:
        if code in (401, 403):
            return (f"{self.url}: the token was refused (HTTP {code}); set {TOKEN_ENV} to the access token of "
                    "Account & Settings (a legacy token needs LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)")
        if code == 404:
            return f"{self.url}: no project {self.project} (HTTP 404); its id is the number in the project's URL"
        return f"{self.url}: project {self.project}: HTTP {code} {reason}"

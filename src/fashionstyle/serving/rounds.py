"""Label Studio's "start training" as a labelling round, for a backend whose operator opted in with
`serve RUN --label-studio ROOT --train-into OUT`.

    rounds = Rounds("runs/round0", "runs/round1", "/srv")        # checked before the model loads
    rounds.start(project=1, url="http://localhost:8080", token="...")
    # -> {"training": True, "status": "started", ...}: `fashionstyle round runs/round0 --label-studio URL
    #    --project 1 --image-dir /srv --out runs/round1` in a process of its own, its output in
    #    runs/round1.round/round.log; while it runs, another start answers "already running"

The round runs beside the service, never inside a request; the service keeps serving its own run. Once the
round's run is complete, further starts answer that it is there to be served (one round per --train-into).
The token is $LABEL_STUDIO_API_KEY where the service has it and its operator named Label Studio's address
(--label-studio-url), else the one Label Studio gave at /setup with its address: a credential of the
service's never goes to an address it did not choose.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.output_folder import claim_folder
from fashionstyle.core.run import RunDir
from fashionstyle.labelstudio.client import TOKEN_ENV
from fashionstyle.labelstudio.round import inputs_folder

LOG_NAME = "round.log"


class Rounds:
    """At most one `fashionstyle round` from `run` into `out` at a time, on request."""

    def __init__(self, run: str | Path, out: str | Path, document_root: str | Path):
        self.run, self.out, self.root = Path(run).resolve(), Path(out).resolve(), Path(document_root).resolve()
        RunDir(self.out).refuse_taken(resumable=False)  # before the model loads: one round per --train-into
        if not (self.run / "config.yaml").is_file():
            raise FashionStyleError(f"--train-into: {run} has no config.yaml; rounds continue a run made by "
                                    "`fashionstyle train`")
        self.log = inputs_folder(self.out) / LOG_NAME
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self, project: int, url: str, token: str, operator_url: bool = False) -> dict[str, Any]:
        """Start the round unless one is running or done; what happened, for Label Studio. The service's own
        $LABEL_STUDIO_API_KEY goes only to an address its operator named (`operator_url`: --label-studio-url);
        to an address /setup gave, only the token /setup gave with it."""
        token = (os.environ.get(TOKEN_ENV) if operator_url else None) or token
        if not token:
            raise FashionStyleError(f"no Label Studio token to pull the export with: set {TOKEN_ENV} and "
                                    "--label-studio-url where serve runs, or connect the model again (/setup gives one)")
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return {"training": True, "status": "already running",
                        "detail": f"a round into {self.out} is running (pid {self._process.pid}); log: {self.log}"}
            if RunDir(self.out).is_complete():
                return {"training": False, "status": "done",
                        "detail": f"{self.out} holds this round's run: serve it for the next round"}
            self._process = self._spawn(project, url, token)
            return {"training": True, "status": "started",
                    "detail": f"round into {self.out} started (pid {self._process.pid}); log: {self.log}"}

    def command(self, project: int, url: str) -> list[str]:
        return [sys.executable, "-m", "fashionstyle.cli", "round", str(self.run), "--out", str(self.out),
                "--label-studio", url, "--project", str(project), "--image-dir", str(self.root)]

    def _spawn(self, project: int, url: str, token: str) -> subprocess.Popen:
        claim_folder(inputs_folder(self.out), "round")
        env = {**os.environ, TOKEN_ENV: token}
        with open(self.log, "ab") as log:
            return subprocess.Popen(self.command(project, url), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def stop(self) -> None:
        """End a running round (a service shutting down, a test); its run stays resumable."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                self._process.wait(30)

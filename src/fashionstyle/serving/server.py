"""Running the service: uvicorn with the request time limits, until interrupted.

    serve("runs/lite0", port=8000, limits=ServiceLimits(max_images=4))   # what `fashionstyle serve` calls
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.serving.app import create_app
from fashionstyle.serving.limits import ServiceLimits
from fashionstyle.serving.protocol import timed_protocol


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          runtime: str = "torch", label_info: str | Path | None = None, limits: ServiceLimits | None = None,
          operating_point: str | None = None, label_studio: str | Path | None = None, backend_auth: str | None = None,
          label_studio_url: str | None = None, train_into: str | Path | None = None, **limit_values: Any) -> None:
    """Check the limits and the run, load the model once, then answer on `host`:`port` (one process).

    `limits`, or single limits by name (`header_timeout=5`): ServiceLimits; the time limits act in
    uvicorn's protocol (protocol.py), the others in the app. `label_studio`: a document root; the
    service then also answers as a Label Studio ML backend under /label-studio, behind `backend_auth`
    ("USER:PASSWORD", else FASHIONSTYLE_BACKEND_AUTH; needed beyond loopback), fetching uploads only
    from `label_studio_url` (else the address /setup gives); with `train_into`, Label Studio's "Start
    training" runs one labelling round from this run into that folder, in a process of its own (rounds.py).
    """
    import uvicorn

    if label_studio is not None:  # every backend setting checked before the model loads
        from fashionstyle.serving.label_studio import check_exposure, parse_auth
        from fashionstyle.serving.task_images import TaskImages

        backend_auth = parse_auth(backend_auth)
        check_exposure(host, backend_auth)
        TaskImages(label_studio, label_studio_url)
    rounds = None
    if train_into is not None:
        from fashionstyle.serving.rounds import Rounds

        if label_studio is None:
            raise FashionStyleError("--train-into needs --label-studio DOCUMENT_ROOT: rounds start from the backend")
        rounds = Rounds(run_dir, train_into, label_studio)
    app = create_app(run_dir, runtime=runtime, label_info=label_info, limits=limits, operating_point=operating_point,
                     **limit_values,
                     loading=lambda line: print(f"serve: {line}", file=sys.stderr, flush=True))
    if label_studio is not None:
        from fashionstyle.serving.label_studio import mount_label_studio

        mount_label_studio(app, label_studio, Path(run_dir).resolve().name, auth=backend_auth,
                           label_studio_url=label_studio_url, rounds=rounds)
    print(f"serve: {len(app.state.predictor.label_names)} styles; the page at http://{host}:{port}/, "
          f"the API at /predict, its documentation at /docs", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=timed_protocol(app.state.limits))

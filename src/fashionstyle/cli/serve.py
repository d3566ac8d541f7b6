"""`fashionstyle serve RUN`: the HTTP API and web page of a run."""
from __future__ import annotations

import argparse

from fashionstyle.cli.args import add_run_arg, int_in
from fashionstyle.core.choices import RUNTIMES

ABOUT = "HTTP API and web page for a run (POST /predict, GET /docs)"
EXAMPLE = "fashionstyle serve runs/lite0 --port 8000"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from fashionstyle.serving.limits import LIMIT_SPECS  # the service's one table of limits

    p = sub.add_parser("serve", help=ABOUT)
    add_run_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    p.add_argument("--port", type=int_in(0, 65535), default=8000, help="port (default: 8000)")
    for spec in LIMIT_SPECS:
        p.add_argument(spec.flag, type=spec.kind, default=spec.default,
                       help=f"{spec.help} (default: {spec.default:,}; {spec.range_text()})")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch", help=f"{RUNTIMES.help()} (default: torch)")
    p.add_argument("--label-info", default=None, metavar="FILE.csv",
                   help="CSV with the header label,description: each style's description, shown on hover in "
                        "the page and returned by GET /labels (default: built-in descriptions of the 13 JD styles "
                        "when the run's labels are those)")
    p.add_argument("--operating-point", default=None, metavar="NAME",
                   help="the operating point labels are decided at unless a request asks for another "
                        "(POST /predict?operating_point=NAME; default: the run's own thresholds)")
    p.add_argument("--label-studio", default=None, metavar="DOCUMENT_ROOT",
                   help="also answer as a Label Studio ML backend under /label-studio (/health, /setup, /predict), "
                        "reading task images below DOCUMENT_ROOT (docs/label-less.md)")
    p.add_argument("--backend-auth", default=None, metavar="USER:PASSWORD",
                   help="with --label-studio: the user and password Label Studio's \"Connect model\" sends (basic "
                        "auth) to /setup and /predict; needed unless --host is a loopback address (default: "
                        "$FASHIONSTYLE_BACKEND_AUTH)")
    p.add_argument("--label-studio-url", default=None, metavar="URL",
                   help="with --label-studio: the only Label Studio (scheme, host, port) uploaded photos are fetched "
                        "from and the access token is sent to (default: the address /setup gives)")
    p.add_argument("--train-into", default=None, metavar="OUT",
                   help="with --label-studio: Label Studio's \"Start training\" runs `fashionstyle round RUN --out "
                        "OUT` in a process of its own (one round; another start while it runs: already running; "
                        "default: events start no training)")
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.serving.limits import ServiceLimits
    from fashionstyle.serving.server import serve

    limits = ServiceLimits.from_mapping(vars(args))  # out of range: one line naming the flag
    serve(args.run, host=args.host, port=args.port, runtime=args.runtime, label_info=args.label_info, limits=limits,
          operating_point=args.operating_point, label_studio=args.label_studio, backend_auth=args.backend_auth,
          label_studio_url=args.label_studio_url, train_into=args.train_into)
    return 0

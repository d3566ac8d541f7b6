"""The service's limits: one table of names, defaults, valid ranges and help, read by the `serve` command's
flags, `create_app`, the protocol's timeouts and GET /health.

    limits = ServiceLimits(max_images=4)           # checked here: FashionStyleError naming the flag
    for spec in LIMIT_SPECS: parser.add_argument(spec.flag, type=spec.kind, default=spec.default, help=spec.help)
    ServiceLimits.from_mapping(vars(args))         # the fields of an argparse namespace (others ignored)

What one request may cost is bounded before anything is decoded: bodies over `max_bytes`, more
than `max_images` files, the readable images over `max_request_pixels` in all (each read from its
header) are refused with 413; one image over `max_pixels` or more elongated than MAX_ASPECT:1 is
that file's error. At most `decoders` requests decode at once. A connection's request line and
headers must arrive within `header_timeout` s; its body may pause at most `body_timeout` s and
must be complete `body_deadline` s after its headers; otherwise the connection is closed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, NamedTuple

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images import BOMB_PIXELS

MAX_ASPECT = 20  # longer side / shorter side; beyond it the model's resize alone could take GBs


def _limit(default: float, help: str, low: float, high: float | None = None, why: str = "") -> Any:
    return field(default=default, metadata={"help": help, "low": low, "high": high, "why": why})


@dataclass(frozen=True)
class ServiceLimits:
    """Every limit of one service; a value outside its range is refused in one line naming its flag."""

    max_bytes: int = _limit(10_000_000, "largest request body, in bytes", 1)
    max_images: int = _limit(16, "most images per request", 1)
    max_pixels: int = _limit(50_000_000, "largest image, in pixels, read from its header (a 48 MP photo)", 1,
                             BOMB_PIXELS, "Pillow's decompression-bomb limit")
    max_request_pixels: int = _limit(200_000_000, "most pixels of all of one request's images", 1)
    decoders: int = _limit(2, "most requests decoding images at once; each adds up to about 8 bytes a pixel "
                              "of a --max-pixels image to peak memory (400 MB at 50M)", 1, 64)
    header_timeout: float = _limit(10.0, "seconds a connection may take to send a request's line and "
                                         "headers, from its opening or its previous response", 0.001, 3600)
    body_timeout: float = _limit(10.0, "seconds a request's body may pause (no byte arriving) before the "
                                       "connection is closed", 0.001, 3600)
    body_deadline: float = _limit(120.0, "seconds a request's body may take in all, from the end of its "
                                         "headers (10 MB in 120 s: 0.7 Mbit/s)", 0.001, 86400)

    def __post_init__(self) -> None:
        for spec in LIMIT_SPECS:
            spec.check(getattr(self, spec.name))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "ServiceLimits":
        """The limits named in `values` (e.g. vars(args)); None or absent: the default."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if values.get(f.name) is not None})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LimitSpec(NamedTuple):
    """One row of the table: a field of ServiceLimits with its flag, type, default and valid range."""

    name: str
    kind: type
    default: Any
    low: float
    high: float | None
    help: str
    why: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        high = f"{self.high:,}" if self.high is not None else "no upper bound"
        return f"{self.low:,} to {high}" + (f" ({self.why})" if self.why else "")

    def check(self, value: Any) -> None:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and (self.kind is float or float(value).is_integer()) and math.isfinite(value)
              and value >= self.low and (self.high is None or value <= self.high))
        if not ok:
            kind = "a whole number" if self.kind is int else "a number"
            raise FashionStyleError(f"{self.flag} {value!r} is out of range: {kind} from {self.range_text()}")


LIMIT_SPECS: tuple[LimitSpec, ...] = tuple(
    LimitSpec(f.name, type(f.default), f.default, f.metadata["low"], f.metadata["high"], f.metadata["help"],
              f.metadata["why"])
    for f in fields(ServiceLimits))

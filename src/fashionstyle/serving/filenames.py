"""RFC 5987 file names in multipart uploads: `filename*=UTF-8''caf%C3%A9.jpg` made `filename="café.jpg"`.

    body = plain_filenames(body, content_type)     # unchanged when no part has a filename* parameter

python-multipart (what Starlette parses forms with) follows RFC 7578 and ignores `filename*`, so a
part named only that way would reach the app as a text field, not a file. Some clients (curl's
libcurl options, HTTP libraries following RFC 6266) send it for non-ASCII names; as RFC 6266 says,
it wins over a plain `filename` given beside it. The decoded name travels as UTF-8, which Starlette
reads in a form without a charset.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

DISPOSITION = re.compile(r"(?im)^content-disposition:[^\r\n]*")
EXTENDED = re.compile(r";\s*filename\*\s*=\s*(\"[^\"]*\"|[^;]*)", re.I)
ANY_FILENAME = re.compile(r";\s*filename\*?\s*=\s*(?:\"(?:[^\"\\]|\\.)*\"|[^;]*)", re.I)
BOUNDARY = re.compile(rb"boundary=(\"[^\"]+\"|[^;\s]+)", re.I)


def plain_filenames(body: bytes, content_type: bytes) -> bytes:
    """`body` (multipart/form-data) with each part's filename* decoded into a plain quoted filename."""
    found = BOUNDARY.search(content_type or b"")
    if b"filename*" not in body or not found:
        return body
    delimiter = b"\r\n--" + found.group(1).strip(b'"')
    parts = (b"\r\n" + body).split(delimiter)  # the first delimiter may open the body without a CRLF
    for k in range(1, len(parts)):
        end = parts[k].find(b"\r\n\r\n")
        if end > 0:
            head = parts[k][:end].decode("latin-1")  # header bytes as they are, one char per byte
            parts[k] = DISPOSITION.sub(_plain, head).encode("latin-1") + parts[k][end:]
    return delimiter.join(parts)[2:]


def _plain(match: re.Match) -> str:
    """One Content-Disposition line with filename* (if any, and decodable) as its only filename."""
    line = match.group(0)
    extended = EXTENDED.search(line)
    name = decode_extended(extended.group(1)) if extended else None
    if name is None:
        return line
    quoted = "".join(c for c in name if c >= " " and c != "\x7f").replace("\\", "\\\\").replace('"', '\\"')
    return ANY_FILENAME.sub("", line) + '; filename="' + quoted.encode("utf-8").decode("latin-1") + '"'


def decode_extended(value: str) -> str | None:
    """The text of an RFC 5987 ext-value (`charset'language'percent-encoded`), or None if it is not one."""
    charset, quote, rest = value.strip().strip('"').partition("'")
    language, quote2, encoded = rest.partition("'")
    if not (quote and quote2):
        return None
    try:
        return unquote_to_bytes(encoded).decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError):
        return None

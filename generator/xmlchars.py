"""The characters no page, feed or book may hold, left out where text becomes a document.

XML 1.0 does not allow control characters other than tab and the line ends, the halves of a surrogate pair
standing alone, or U+FFFE and U+FFFF: one of them makes a feed or a book's XHTML not XML at all, which a
feed reader or an e-reader refuses whole. HTML counts them, the other controls (U+007F to U+009F) and the
non-characters U+FDD0 to U+FDEF as errors. `load.read_text` leaves them out of the files it reads, but a
text can still bring them in: a numeric character reference in a chapter (`&#xC;`, `&#1;`, `&#xFFFF;`,
in Markdown or in the author's HTML, which the sanitiser turns into the character), an escape in the
site's settings (`"\\u0001"`), a value another stage makes.

So every document is made of text that went through `xml_text` (the strings of a feed, the metadata of a
book) or comes out of `xml_utf8` (a page, a book's XHTML): nothing to do but a quick look when there is none
of them, the usual case.
"""

from __future__ import annotations

import re

# Every code point to leave out (`load.read_text` removes them from every file it reads).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")

# The same, in UTF-8 (lone surrogates as `surrogatepass` writes them), by their first byte: the ASCII controls
# are found by deleting them (much quicker than a regular expression over every byte), the others are looked for
# only in a text that has their first byte at all.
ASCII_CONTROLS = bytes(b for b in range(0x20) if b not in b"\t\n\r") + b"\x7f"
_BY_FIRST_BYTE = ((b"\xc2", re.compile(rb"\xc2[\x80-\x9f]")),  # U+0080 to U+009F
                  (b"\xed", re.compile(rb"\xed[\xa0-\xbf]")),  # U+D800 to U+DFFF
                  (b"\xef", re.compile(rb"\xef(?:\xb7[\x90-\xaf]|\xbf[\xbe\xbf])")))  # U+FDD0 to U+FDEF, U+FFFE/F


def xml_text(text: str) -> str:
    """`text` without the characters a document may not hold (the same string when it has none)."""
    return _FORBIDDEN.sub("", text) if _FORBIDDEN.search(text) is not None else text


def xml_utf8(text: str) -> bytes:
    """`xml_text(text)` in UTF-8; for a whole document, where looking at its bytes is quicker."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data.translate(None, ASCII_CONTROLS)) == len(data) and not any(
            first in data and pattern.search(data) is not None for first, pattern in _BY_FIRST_BYTE):
        return data
    return _FORBIDDEN.sub("", text).encode("utf-8")

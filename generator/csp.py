"""The Content-Security-Policy of the pages: the hashes of the theme's own inline scripts.

The theme's base template writes the policy into each page, as a
`<meta http-equiv="Content-Security-Policy">` at the top of its head (a static
host such as GitHub Pages sends no header of the site's choosing). Scripts may
come only from the site itself (`script-src 'self'`), and an inline script only
when it is one of the page's own: where the template writes
`{{ inline_script_hashes }}`, the `'sha256-…'` of every inline script of the
rendered page goes (`with_script_hashes`), computed from the script as it was
rendered. So a script that finds its way into a page by any other road (a
file edited by hand, a hole in the sanitiser) does not run.

Every `<script` in a page is the theme's: an author's text comes through the
sanitiser, which drops scripts and writes every `<` of a text or an attribute
value as `&lt;`, and the templates escape everything else they print.
"""

from __future__ import annotations

import base64
import hashlib
import re

from markupsafe import Markup

from generator.xmlchars import xml_text

# What the template prints where the hashes go: replaced once the page is rendered (no text of the site can
# hold it: see the module's doc).
SCRIPT_HASHES = Markup("<serialist-inline-script-hashes>")

_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script[\t\n\f\r ]*>", re.DOTALL | re.IGNORECASE)
_TYPE = re.compile(r"""[\t\n\f\r ]type[\t\n\f\r ]*=[\t\n\f\r ]*(?:"([^"]*)"|'([^']*)'|([^\t\n\f\r "'>]+))""",
                   re.IGNORECASE)
_SRC = re.compile(r"[\t\n\f\r ]src[\t\n\f\r ]*=", re.IGNORECASE)
# The `type`s of a script that runs (HTML's JavaScript MIME types, and modules); any other is a data block.
_RUNS = frozenset({"", "module", "application/ecmascript", "application/javascript", "application/x-ecmascript",
                   "application/x-javascript", "text/ecmascript", "text/javascript", "text/javascript1.0",
                   "text/javascript1.1", "text/javascript1.2", "text/javascript1.3", "text/javascript1.4",
                   "text/javascript1.5", "text/jscript", "text/livescript", "text/x-ecmascript",
                   "text/x-javascript"})


def _runs(attributes: str) -> bool:
    """Whether a `<script>` with these attributes is an inline script that runs (not a data block, not `src`)."""
    if _SRC.search(attributes) is not None:
        return False
    found = _TYPE.search(attributes)
    kind = next((value for value in found.groups() if value is not None), "") if found is not None else ""
    return kind.strip().lower() in _RUNS


def script_hash(script: str) -> str:
    """The CSP source that lets an inline script with this text run: what the browser hashes is the text as it
    reads it from the page (line ends as `\\n`), in UTF-8."""
    text = xml_text(script).replace("\r\n", "\n").replace("\r", "\n")  # (as the page holds it: `xml_utf8`)
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def inline_script_hashes(html: str) -> list[str]:
    """The CSP sources of the page's inline scripts that run, in order, each once."""
    sources: dict[str, None] = {}
    at = html.find("<script")  # (a theme writes its tags in lower case; one in upper case is left to the browser)
    while at >= 0:
        found = _SCRIPT.match(html, at)
        if found is None:  # (not a script element, or one without its end tag)
            at = html.find("<script", at + 1)
            continue
        if _runs(found.group(1)):
            sources.setdefault(script_hash(found.group(2)), None)
        at = html.find("<script", found.end())
    return list(sources)


def with_script_hashes(html: str) -> str:
    """The rendered page with its inline scripts' hashes where the template printed `SCRIPT_HASHES`, each after
    a space (`script-src 'self'{{ inline_script_hashes }}`)."""
    if SCRIPT_HASHES not in html:
        return html
    return html.replace(SCRIPT_HASHES, "".join(" " + source for source in inline_script_hashes(html)))

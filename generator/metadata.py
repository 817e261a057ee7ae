"""What a page says about itself to search engines and link previews.

For every page: a plain-text description, OpenGraph properties
(`og:title`, `og:type`, `og:url`, …), the Twitter card, and schema.org
JSON-LD (a `Book` for a story and its whole-work page, a `Chapter` for a
chapter, a `WebSite` for the home page). Built here in Python from the model;
the theme's `_head_meta.html` only prints them. JSON for a `<script>` element
goes through `script_json`, which escapes `<`, `>` and `&` so that
no value can end the script element, whatever an author puts in a title.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from generator import urls
from generator.model import Chapter, Site, Story
from generator.urls import Linker

DESCRIPTION_LENGTH = 300
OG_TAGS = 20  # `article:tag` / `book:tag` per page at most: every chapter page repeats them

# schema.org `creativeWorkStatus` of a story, by Serialist status.
WORK_STATUS = {"ongoing": "Ongoing", "complete": "Complete", "hiatus": "Hiatus", "abandoned": "Discontinued"}

# `og:locale` wants language_TERRITORY; a bare language gets its most common territory.
_DEFAULT_TERRITORY = {
    "ar": "AR", "cs": "CZ", "da": "DK", "de": "DE", "el": "GR", "en": "US", "es": "ES", "fi": "FI", "fr": "FR",
    "he": "IL", "hi": "IN", "hu": "HU", "id": "ID", "it": "IT", "ja": "JP", "ko": "KR", "nb": "NO", "nl": "NL",
    "pl": "PL", "pt": "BR", "ro": "RO", "ru": "RU", "sv": "SE", "th": "TH", "tr": "TR", "uk": "UA", "vi": "VN",
    "zh": "CN",
}

_FOOTNOTES = re.compile(r'<hr class="footnotes-sep"\s*/?>|<section class="footnotes">.*?</section>'
                        r'|<sup class="footnote-ref">.*?</sup>', re.S)
_BLOCK_END = re.compile(r"</(p|li|h[1-6]|blockquote|div|dd|dt|tr)>|<br\s*/?>", re.I)


@dataclass(frozen=True, slots=True)
class PageMeta:
    """What `_head_meta.html` prints for one page."""

    description: str
    opengraph: tuple[tuple[str, str], ...]  # (property, content) for <meta property=…>, in order
    twitter: tuple[tuple[str, str], ...]  # (name, content) for <meta name=…>
    json_ld: dict[str, Any] | None = field(default=None)

    @property
    def json_ld_script(self) -> Markup:
        """The JSON-LD, ready to print inside `<script type="application/ld+json">`."""
        return script_json(self.json_ld) if self.json_ld is not None else Markup("")


def script_json(data: Any) -> Markup:
    """JSON that is safe inside an HTML `<script>` element: `<`, `>`, `&` (and U+2028/9) as \\u escapes.

    Parsing the script's text as JSON gives back exactly `data`.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return Markup(text)


def plain_text(html: str, limit: int = DESCRIPTION_LENGTH) -> str:
    """Rendered Markdown as one line of plain text (footnotes dropped), cut at a word to at most `limit`."""
    html = _BLOCK_END.sub(lambda m: m.group(0) + " ", _FOOTNOTES.sub("", html))
    text = " ".join(Markup(html).striptags().split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:.–—-") + "…"


def og_locale(language: str) -> str:
    """`en` → `en_US`, `en-GB` → `en_GB`, `pt-br` → `pt_BR`; anything else as it is, with `_`."""
    parts = language.replace("_", "-").split("-")
    lang = parts[0].lower()
    region = next((p for p in parts[1:] if len(p) == 2 and p.isalpha()), None)
    if region:
        return f"{lang}_{region.upper()}"
    territory = _DEFAULT_TERRITORY.get(lang)
    return f"{lang}_{territory}" if territory else lang


def _url(link: Linker, path: str) -> str:
    """The absolute URL of a page when the site's `base_url` is known, else the link from this page."""
    return link.absolute(path) or link.url(path)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _all_tags(story: Story) -> list[str]:
    seen: dict[str, None] = {}
    for tag in (*story.fandoms, *story.relationships, *story.characters, *story.tags):
        seen.setdefault(tag, None)
    return list(seen)


def _chapter_name(story: Story, chapter: Chapter) -> str:
    return story.title if story.single_file else chapter.heading


def _person(name: str) -> dict[str, str]:
    return {"@type": "Person", "name": name}


def _drop_empty(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v not in (None, "", [], {})}


def book(story: Story, link: Linker, chapters: tuple[Chapter, ...] | None = None) -> dict[str, Any]:
    """schema.org `Book` for a story: its chapters (or those on the page, `chapters`) as `hasPart`."""
    tags = _all_tags(story)
    return _drop_empty({
        "@context": "https://schema.org",
        "@type": "Book",
        "name": story.title,
        "url": _url(link, urls.story_path(story)),
        "author": _person(story.author) if story.author else None,
        "inLanguage": story.language,
        "description": plain_text(story.summary_html),
        "genre": list(story.tags),
        "keywords": ", ".join(tags),
        "contentRating": story.rating,
        "creativeWorkStatus": WORK_STATUS[story.status],
        "datePublished": _iso(story.published),
        "dateModified": _iso(story.updated),
        "isAccessibleForFree": True,
        "hasPart": [_drop_empty({
            "@type": "Chapter",
            "position": chapter.number,
            "name": _chapter_name(story, chapter),
            "url": _url(link, urls.chapter_path(story, chapter)),
            "datePublished": _iso(chapter.date),
        }) for chapter in (story.chapters if chapters is None else chapters)],
    })


def chapter_ld(story: Story, chapter: Chapter, link: Linker) -> dict[str, Any]:
    """schema.org `Chapter`, part of the story's `Book`.

    The chapter's own `creativeWorkStatus` is `Published` (or `Draft`); the
    story's (`Ongoing`, `Complete`, …) is on the `Book` it `isPartOf`.
    """
    return _drop_empty({
        "@context": "https://schema.org",
        "@type": "Chapter",
        "name": _chapter_name(story, chapter),
        "position": chapter.number,
        "url": _url(link, urls.chapter_path(story, chapter)),
        "author": _person(story.author) if story.author else None,
        "inLanguage": story.language,
        "description": plain_text(chapter.summary_html),
        "datePublished": _iso(chapter.date),
        "dateModified": _iso(chapter.updated),
        "creativeWorkStatus": "Draft" if chapter.draft else "Published",
        "contentRating": story.rating,
        "isAccessibleForFree": True,
        "isPartOf": _drop_empty({
            "@type": "Book",
            "name": story.title,
            "url": _url(link, urls.story_path(story)),
            "author": _person(story.author) if story.author else None,
            "creativeWorkStatus": WORK_STATUS[story.status],
            "contentRating": story.rating,
        }),
    })


def website(site: Site, link: Linker) -> dict[str, Any]:
    config = site.config
    return _drop_empty({
        "@context": "https://schema.org",
        "@type": "WebSite",
        "name": config.title,
        "url": _url(link, urls.HOME),
        "description": config.description,
        "inLanguage": config.language,
        "author": _person(config.author) if config.author else None,
    })


def page_meta(template: str, site: Site, link: Linker, title: str,
              story: Story | None = None, chapter: Chapter | None = None,
              chapters: tuple[Chapter, ...] | None = None) -> PageMeta:
    """The metadata of the page rendered with `template` (`home.html`, `story.html`, …); `chapters`, those
    on a page of the whole work that is split into parts."""
    config = site.config
    kind = template.rsplit("/", 1)[-1].removesuffix(".html")
    language = story.language if story is not None else config.language
    suffix = f" - {config.title}"
    og_title = title.removesuffix(suffix) if title != config.title else title
    og_type = "website"
    json_ld: dict[str, Any] | None = None
    extra: list[tuple[str, str]] = []
    description = config.description or config.title
    if story is not None and chapter is not None and kind == "chapter":
        og_type = "article"
        og_title = f"{_chapter_name(story, chapter)} - {story.title}" if not story.single_file else story.title
        description = (plain_text(chapter.summary_html) or plain_text(story.summary_html) or story.title)
        json_ld = chapter_ld(story, chapter, link)
        if chapter.date:
            extra.append(("article:published_time", chapter.date.isoformat()))
        if chapter.updated:
            extra.append(("article:modified_time", chapter.updated.isoformat()))
        extra += [("article:tag", tag) for tag in _all_tags(story)[:OG_TAGS]]
    elif story is not None and kind in ("story", "work"):
        og_type = "book"
        if kind == "story":
            og_title = story.title
        description = plain_text(story.summary_html) or story.title
        json_ld = book(story, link, chapters if kind == "work" else None)
        if story.published:
            extra.append(("book:release_date", story.published.isoformat()))
        extra += [("book:tag", tag) for tag in _all_tags(story)[:OG_TAGS]]
    elif kind == "home":
        og_title = config.title
        json_ld = website(site, link)
    canonical = link.absolute(link.page) if kind != "404" else ""
    opengraph = [("og:title", og_title), ("og:type", og_type)]
    if canonical:
        opengraph.append(("og:url", canonical))
    opengraph += [("og:description", description), ("og:site_name", config.title), ("og:locale", og_locale(language))]
    if story is not None and story.cover and link.base_url:  # the story's cover (`Story.cover`), absolute
        opengraph += [("og:image", link.absolute(story.cover)), ("og:image:alt", f"Cover of {story.title}")]
    return PageMeta(
        description=description,
        opengraph=tuple(opengraph + extra),
        twitter=(("twitter:card", "summary"),),
        json_ld=json_ld,
    )

"""Markdown to safe HTML for prompts, responses and guidelines.

markdown-it-py renders CommonMark with raw HTML turned off, for prompts and responses with every line break
kept (a model's poem or address is written line by line, not as Markdown paragraphs), for the guidelines
as plain CommonMark; nh3 (the ammonia sanitizer) then keeps only a list of harmless tags. Images are
dropped, not shown: a model's output must not make the annotator's browser fetch anything from the
internet. Rendered model text is cached, since the same responses come back to many annotators.
"""

from __future__ import annotations

import functools

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "kbd", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}


def _markdown(*, breaks: bool) -> MarkdownIt:
    options = {"html": False, "linkify": False, "breaks": breaks}
    return MarkdownIt("commonmark", options).enable("table").enable("strikethrough")


_MODEL_TEXT = _markdown(breaks=True)
_DOCUMENT = _markdown(breaks=False)  # guidelines are written by people, often wrapped at a fixed width


@functools.lru_cache(maxsize=8192)
def render_markdown(text: str) -> Markup:
    """Safe HTML for a prompt or response: Markdown with every line break kept, then sanitized."""
    return _clean(_MODEL_TEXT.render(text))


def render_document(text: str) -> Markup:
    """Safe HTML for the guidelines: plain CommonMark (a single newline joins lines), then sanitized."""
    return _clean(_DOCUMENT.render(text))


def _clean(html: str) -> Markup:
    """Only harmless tags; links open nothing by themselves."""
    cleaned = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(cleaned)

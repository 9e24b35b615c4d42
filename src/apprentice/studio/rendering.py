"""Markdown to safe HTML for prompts, responses and guidelines.

markdown-it-py renders CommonMark with raw HTML turned off, and with every line break kept (a model's poem or
address is written line by line, not as Markdown paragraphs); nh3 (the ammonia sanitizer) then keeps only
a list of harmless tags. Images are dropped, not shown: a model's output must not make the annotator's
browser fetch anything from the internet. Rendered text is cached, since the same responses come back
to many annotators.
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
_MARKDOWN = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("table").enable("strikethrough")
)


@functools.lru_cache(maxsize=8192)
def render_markdown(text: str) -> Markup:
    """Safe HTML for `text`: Markdown rendered, then sanitized (links open nothing by themselves)."""
    html = _MARKDOWN.render(text)
    cleaned = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(cleaned)

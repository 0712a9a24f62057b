"""War-room Markdown, rendered then sanitised with an allow-list (nh3, the ammonia binding).

Sanitising after rendering is what matters: Markdown passes raw HTML through, so the allow-list is
the only thing between a note and the responders' browsers (ASVS 1.3.5).
"""

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "li", "ol", "p", "pre", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}
# No javascript:, data:, vbscript: or anything else that can run or smuggle content.
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}
MAX_NOTE_CHARS = 100_000


def render_markdown(text: str) -> SafeString:
    html = markdown.markdown(text[:MAX_NOTE_CHARS], extensions=["fenced_code", "tables", "sane_lists"])
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return mark_safe(clean)  # noqa: S308 - nh3 has just sanitised it

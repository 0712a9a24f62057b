"""Fuzz the war-room Markdown renderer: whatever a note says, the HTML it renders never carries
script: no element outside the allow-list, no event-handler (`on*`) or other unlisted attribute, no
URL with a scheme other than http, https or mailto (ASVS 1.3.5). The output is parsed, not grepped,
so an encoded or split attack is judged as a browser would read it.
"""

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import django_setup, fuzz, instrumented  # noqa: E402

django_setup()
rendering = instrumented("incidents.markdown", also=("markdown",))

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "poster", "data"}
SNIPPETS = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))", "[x](java\tscript:alert(1))", "<a href='data:text/html,<script>'>x</a>",
    "<svg onload=alert(1)>", "<iframe src=//evil>", "![x](vbscript:msgbox)", "<a href=\"&#106;avascript:x\">y</a>",
    "<style>@import 'x'</style>", "```\n<script>\n```", "| a | b |\n|---|---|\n| <b onclick=x>c</b> | d |",
    "<details open ontoggle=alert(1)>", "[a](https://example.org \"title\")", "<math><mtext><script>x",
    "<a href=\"  javascript:x\">y</a>", "[x](<javascript:alert(1)>)", "<<script>script>", "*a* _b_ `c` **d**",
]  # fmt: skip


class Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in rendering.ALLOWED_TAGS:
            self.problems.append(f"element <{tag}>")
        allowed = rendering.ALLOWED_ATTRIBUTES.get(tag, set()) | ({"rel"} if tag == "a" else set())
        for name, value in attrs:
            if name.startswith("on") or name not in allowed:
                self.problems.append(f"attribute {name} on <{tag}>")
            if name in URL_ATTRIBUTES and value:
                scheme = urlsplit(value.strip()).scheme.lower()
                if scheme and scheme not in rendering.ALLOWED_URL_SCHEMES:
                    self.problems.append(f"{name}={value!r}")


def test_one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    parts = []
    while data.remaining_bytes():
        if data.ConsumeIntInRange(0, 3) == 0:
            parts.append(data.PickValueInList(SNIPPETS))
        else:
            parts.append(data.ConsumeUnicodeNoSurrogates(data.ConsumeIntInRange(0, 64)))
    html = str(rendering.render_markdown("".join(parts)))
    checker = Checker()
    checker.feed(html)
    checker.close()
    assert "<script" not in html.lower(), html
    assert not checker.problems, (checker.problems, html)


if __name__ == "__main__":
    fuzz(test_one_input, seeds=[snippet.encode() for snippet in SNIPPETS], name="markdown")

"""Note Markdown is rendered and then sanitised with an allow-list: an XSS corpus must come out inert.

The output is parsed with `html.parser.HTMLParser` and every tag, attribute and URL is checked
against the allow-list, rather than grepping the text.
"""

import re
from html.parser import HTMLParser

import pytest

from incidents.markdown import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_markdown

# nh3 adds rel="noopener noreferrer nofollow" to links itself.
ALLOWED = {tag: set(ALLOWED_ATTRIBUTES.get(tag, set())) for tag in ALLOWED_TAGS}
ALLOWED["a"].add("rel")
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "poster", "data"}
SAFE_SCHEMES = {"http", "https", "mailto"}
# Browsers drop ASCII tab/newline and leading C0 controls/space before reading a scheme.
_IGNORED_IN_URL = re.compile(r"[\x00-\x20]")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")

XSS_CORPUS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<img src=x onerror=alert(1)>",
    '<img src="javascript:alert(1)">',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href="jav&#x09;ascript:alert(1)">click</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">click</a>',
    '<a href=" javascript:alert(1)">click</a>',
    '<a href="vbscript:msgbox(1)">click</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">click</a>',
    '<a href="https://ok.example" onclick="alert(1)" onmouseover="alert(2)">ok</a>',
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    '[x](https://ok.example" onmouseover="alert(1))',
    '[x](https://ok.example "title" onmouseover="alert(1)")',
    "![img](javascript:alert(1))",
    '![img](x" onerror="alert(1))',
    "[ref][1]\n\n[1]: javascript:alert(1)",
    "<javascript:alert(1)>",
    '<https://ok.example/" onmouseover="alert(1)>',
    '<iframe src="https://evil.example"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<math href="javascript:alert(1)">x</math>',
    "<style>body{background:url(javascript:alert(1))}</style>",
    '<p style="background:url(javascript:alert(1))">styled</p>',
    '<div title="a" onmouseover="alert(1)">"x"</div>',
    "<a title='\"><script>alert(1)</script>'>quote</a>",
    '"><img src=x onerror=alert(1)>',
    '<form action="https://evil.example"><input name=q><button formaction="javascript:alert(1)">go</button></form>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    '<base href="https://evil.example/">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel=stylesheet href="https://evil.example/x.css">',
    "<!-- <script>alert(1)</script> -->",
    "<!--><img src=x onerror=alert(1)>-->",
    "<details open ontoggle=alert(1)>x</details>",
    "<body onload=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<audio src=x onerror=alert(1)>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<input autofocus onfocus=alert(1)>",
    "<textarea><script>alert(1)</script></textarea>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "<template><script>alert(1)</script></template>",
    '<a href="https://ok.example" style="position:fixed;top:0">overlay</a>',
    "```html\n<script>alert(1)</script>\n```",
    "`<img src=x onerror=alert(1)>`",
    "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | <a href=javascript:alert(1)>x</a> |",
]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_decl(self, decl: str) -> None:
        self.comments.append(decl)


def _unsafe_scheme(url: str) -> str | None:
    normalised = _IGNORED_IN_URL.sub("", url).lower()
    match = _SCHEME.match(normalised)
    if match and match.group(1) not in SAFE_SCHEMES:
        return match.group(1)
    return None


def problems_in(html: str) -> list[str]:
    """Everything in the rendered HTML that the allow-list should have removed."""
    parser = _Collector()
    parser.feed(html)
    parser.close()
    found = [f"comment {c!r}" for c in parser.comments]
    for tag, attrs in parser.tags:
        if tag not in ALLOWED:
            found.append(f"tag <{tag}>")
            continue
        for name, value in attrs:
            if name.startswith("on"):
                found.append(f"event handler {name} on <{tag}>")
            elif name not in ALLOWED[tag]:
                found.append(f"attribute {name} on <{tag}>")
            if name in URL_ATTRIBUTES and value is not None and (scheme := _unsafe_scheme(value)):
                found.append(f"{scheme}: URL in {name} on <{tag}>")
    lowered = html.lower()
    if "<script" in lowered:
        found.append("literal <script")
    return found


def test_corpus_is_big_enough() -> None:
    assert len(XSS_CORPUS) >= 25


def test_checker_flags_what_it_must() -> None:
    """The checker itself can fail: raw dangerous HTML is reported."""
    assert problems_in('<a href="jav\tascript:alert(1)">x</a>') == ["javascript: URL in href on <a>"]
    assert problems_in("<img src=x onerror=alert(1)>") == ["tag <img>"]
    assert problems_in('<p onclick="x">y</p>') == ["event handler onclick on <p>"]
    assert problems_in("<!-- x -->") == ["comment ' x '"]
    assert problems_in('<a href="https://ok.example" rel="nofollow">ok</a>') == []


@pytest.mark.parametrize("payload", XSS_CORPUS)
def test_payload_renders_inert(payload: str) -> None:
    html = str(render_markdown(payload))

    assert problems_in(html) == [], html


@pytest.mark.parametrize("payload", XSS_CORPUS)
def test_payload_inside_ordinary_markdown_renders_inert(payload: str) -> None:
    html = str(render_markdown(f"# Findings\n\n- first\n- {payload}\n\nThen **more** text.\n\n{payload}\n"))

    assert problems_in(html) == [], html


def test_plain_markdown_still_renders() -> None:
    # given
    text = "\n".join(
        [
            "# Containment",
            "",
            "## Steps",
            "",
            "1. Cordon the node",
            "2. Revoke the **token**",
            "",
            "- kept *evidence*",
            "- see [runbook](https://runbooks.example/k8s?x=1&y=2)",
            "",
            "Run `kubectl get pods -A` then:",
            "",
            "```",
            "kubectl cordon node-1 && echo '<done>'",
            "```",
            "",
            "> quoted",
            "",
            "| host | ip |",
            "|---|---|",
            "| node-1 | 10.0.0.5 |",
            "",
            "Mail [the team](mailto:soc@example.test).",
        ]
    )

    # when
    html = str(render_markdown(text))

    # then
    parser = _Collector()
    parser.feed(html)
    tags = [tag for tag, _ in parser.tags]
    for expected in ["h1", "h2", "ol", "ul", "li", "strong", "em", "code", "pre", "blockquote", "table", "td", "a"]:
        assert expected in tags, (expected, html)
    hrefs = [dict(attrs)["href"] for tag, attrs in parser.tags if tag == "a"]
    assert hrefs == ["https://runbooks.example/k8s?x=1&y=2", "mailto:soc@example.test"]
    assert "kubectl cordon node-1 &amp;&amp; echo '&lt;done&gt;'" in html
    assert "<h1>Containment</h1>" in html
    assert problems_in(html) == []


def test_links_get_a_safe_rel() -> None:
    html = str(render_markdown("[docs](https://docs.example)"))

    parser = _Collector()
    parser.feed(html)
    (anchor,) = [dict(attrs) for tag, attrs in parser.tags if tag == "a"]
    assert set((anchor.get("rel") or "").split()) >= {"noopener", "noreferrer"}


def test_script_text_is_dropped_not_escaped_into_the_page() -> None:
    html = str(render_markdown("before <script>alert('x')</script> after"))

    assert "alert" not in html
    assert "before" in html and "after" in html

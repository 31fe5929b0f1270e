"""Message templates: rendering marketer-written Jinja safely, link tracking, and the text part.

Templates are written by marketers and rendered with contact data, so:

- they run in Jinja's immutable sandbox: no attribute starting with ``_``, no mutating methods,
  and any attempt to reach Python internals fails the render (``TemplateError``) instead of
  rendering empty, so a probing template is noticed rather than mailed;
- HTML autoescapes (a first name of ``<script>`` arrives as text), while subject, text and SMS
  do not (they are not HTML; escaping would show ``&lt;`` to the reader);
- a missing field renders empty, never fails: ``{{ contact.fields.plan }}`` for a contact without
  a plan, and ``None`` (an absent standard field) renders as nothing, not "None";
- ``default`` treats ``None`` as missing, so ``{{ contact.first_name | default("there") }}`` works
  for contacts whose first name is unknown.

The context callers pass: ``{"contact": contact.template_context(), "unsubscribe_url": str, ...}``.
Order for email: render the HTML, then `track_links` (leaving the unsubscribe link untracked),
then `html_to_text` when the step has no text template.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.runtime import ChainableUndefined, Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered; the message is meant for the marketer."""


def _finalize(value: Any) -> Any:
    # Absent standard fields are None in Contact.template_context(); show nothing, not "None".
    return "" if value is None else value


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    if value is None or isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


# Bounds on what one expression may build: a template is rendered once per recipient inside a
# worker, and `{{ "x" * 10**9 }}` or `{{ 2 ** 10**9 }}` would take the worker down, not just the send.
_MAX_REPEAT = 100_000
_MAX_POWER_BITS = 4096


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        # Bound the result, not the exponent: chained powers of small exponents grow too.
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() * right > _MAX_POWER_BITS
        ):
            raise SecurityError(f"power larger than {_MAX_POWER_BITS} bits")
        if operator == "*":
            sized, count = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(sized, str | list | tuple) and isinstance(count, int) and len(sized) * count > _MAX_REPEAT:
                raise SecurityError(f"result longer than {_MAX_REPEAT}")
        return super().call_binop(context, operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # Jinja's sandbox returns an undefined here, which ChainableUndefined would render as
        # nothing; fail instead so a template poking at internals is rejected, not sent.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def _environment(*, autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        autoescape=autoescape,
        undefined=ChainableUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
    )
    env.filters["default"] = _default
    env.filters["d"] = _default
    return env


_TEXT_ENV = _environment(autoescape=False)
_HTML_ENV = _environment(autoescape=True)

# Errors a marketer's template can cause while rendering; anything else is our bug and propagates.
_RENDER_ERRORS = (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, RecursionError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"line {exc.lineno}: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"not allowed: {exc}"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, jinja2.TemplateError) else str(exc)


# Templates are few and rendered many times (once per recipient): compile each once per container.
@functools.lru_cache(maxsize=512)
def _compile(template: str, html: bool) -> jinja2.Template:
    env = _HTML_ENV if html else _TEXT_ENV
    try:
        return env.from_string(template)
    except jinja2.TemplateError as exc:
        raise TemplateError(_describe(exc)) from exc


def _render(template: str, context: dict[str, Any], *, html: bool) -> str:
    compiled = _compile(template, html)
    try:
        return compiled.render(context)
    except _RENDER_ERRORS as exc:
        raise TemplateError(_describe(exc)) from exc


def render_text(template: str, context: dict[str, Any]) -> str:
    """Render a subject, a plain-text part or an SMS: no escaping."""
    return _render(template, context, html=False)


def render_html(template: str, context: dict[str, Any]) -> str:
    """Render an HTML body: every substituted value is HTML-escaped."""
    return _render(template, context, html=True)


def check_template(template: str) -> str | None:
    """A readable message when ``template`` does not compile (syntax, unknown filter), else None."""
    try:
        _compile(template, False)
    except TemplateError as exc:
        return str(exc)
    return None


# An <a ...> start tag; quoted attribute values may contain ">".
_A_TAG = re.compile(r"""<a\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
# The href attribute inside it; the leading whitespace keeps data-href and the like out.
_HREF = re.compile(r"""(?<=\s)href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)
_TRACKABLE = re.compile(r"^https?://", re.IGNORECASE)


def track_links(html: str, click_url: Callable[[str], str | None]) -> str:
    """Point every http(s) link of every ``<a>`` at ``click_url(original)``.

    ``click_url`` gets the URL as the browser would see it (``&amp;`` unescaped) and returns the
    tracking URL, or None to leave that link alone (the unsubscribe link: a click on it must not
    count as engagement). mailto:, tel:, anchors and relative links are never touched.
    """

    def rewrite_href(match: re.Match[str]) -> str:
        raw = next(group for group in match.groups() if group is not None)
        original = html_lib.unescape(raw).strip()
        if not _TRACKABLE.match(original):
            return match.group(0)
        tracked = click_url(original)
        if tracked is None:
            return match.group(0)
        return f'href="{html_lib.escape(tracked, quote=True)}"'

    def rewrite_tag(match: re.Match[str]) -> str:
        return _HREF.sub(rewrite_href, match.group(0), count=1)

    return _A_TAG.sub(rewrite_tag, html)


def html_to_text(html: str) -> str:
    """A readable plain-text part from an HTML body: text, links as ``text (url)``, line breaks."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.text()


_BLOCK = frozenset(
    {"div", "tr", "table", "ul", "ol", "section", "article", "header", "footer", "blockquote", "center", "hr"}
)
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6"})
_HIDDEN = frozenset({"style", "script", "head", "title", "template"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._hidden = 0
        # (href, index in _parts where the link text starts) for the open <a>s.
        self._links: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self._parts.append("\n")
        elif tag in _PARAGRAPH:
            self._parts.append("\n\n")
        elif tag in _BLOCK:
            self._parts.append("\n")
        elif tag == "li":
            self._parts.append("\n- ")
        elif tag in ("td", "th"):
            self._parts.append(" ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self._parts.append(alt)
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self._parts)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <img/>: never opens anything, so an <a/> must not start a link either.
        if tag != "a":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _PARAGRAPH:
            self._parts.append("\n\n")
        elif tag in _BLOCK:
            # Not after </li>: the next <li> starts its own line, and a blank line between items reads badly.
            self._parts.append("\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = " ".join("".join(self._parts[start:]).split())
            if href and _TRACKABLE.match(href.strip()) and href.strip() != label:
                self._parts.append(f" ({href.strip()})" if label else href.strip())

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            # HTML whitespace: any run of spaces and newlines is one space.
            self._parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self._parts).split("\n")]
        text = "\n".join(lines)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
        return text + "\n" if text else ""

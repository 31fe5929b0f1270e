"""Templates, link tracking, the derived text part, signed link tokens and phone normalisation (pure)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.channels.sms import normalize_phone
from chalicelib.channels.templates import (
    TemplateError,
    check_template,
    html_to_text,
    render_html,
    render_text,
    track_links,
)
from chalicelib.channels.tokens import BadToken, LinkSigner
from chalicelib.contacts.model import Contact

SECRET = b"0123456789abcdef0123456789abcdef"


def context(**overrides: Any) -> dict[str, Any]:
    contact = Contact(contact_id="c1", email="ann@example.com", first_name="Ann", fields={"plan": "pro"})
    contact = dataclasses.replace(contact, **overrides)
    return {"contact": contact.template_context(), "unsubscribe_url": "https://floe.test/u/tok"}


# Rendering


def test_render_text_reads_the_contact() -> None:
    out = render_text("Hi {{ contact.first_name }}, your plan is {{ contact.fields.plan }}.", context())
    assert out == "Hi Ann, your plan is pro."


def test_missing_and_absent_fields_render_empty() -> None:
    ctx = context(first_name=None)
    assert render_text("[{{ contact.fields.nope }}][{{ contact.first_name }}][{{ nothing.at.all }}]", ctx) == "[][][]"


def test_default_treats_none_as_missing() -> None:
    assert render_text("Hi {{ contact.first_name | default('there') }}", context(first_name=None)) == "Hi there"
    assert render_text("Hi {{ contact.first_name | default('there') }}", context()) == "Hi Ann"


def test_html_escapes_values_but_text_does_not() -> None:
    ctx = context(first_name="<script>x</script>")
    assert render_html("<p>{{ contact.first_name }}</p>", ctx) == "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    assert render_text("{{ contact.first_name }}", ctx) == "<script>x</script>"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ contact.__class__ }}",
        "{{ contact.fields.update({'plan': 'free'}) }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ 'x' * 1000000000 }}",
        "{{ [1] * 10**9 }}",
        "{{ 2 ** 1000000000 }}",
        "{{ 9 ** 9 ** 9 ** 9 ** 9 }}",
    ],
)
def test_sandbox_refuses_internals(template: str) -> None:
    with pytest.raises(TemplateError, match=r"not allowed|unsafe"):
        render_html(template, context())
    with pytest.raises(TemplateError):
        render_text(template, context())


def test_syntax_error_is_a_template_error_with_the_line() -> None:
    with pytest.raises(TemplateError, match="line 2"):
        render_text("ok\n{{ contact.first_name ", context())
    message = check_template("ok\n{% if %}")
    assert message is not None
    assert message.startswith("line 2:")
    assert check_template("{{ contact.first_name | nosuchfilter }}") is not None
    assert check_template("Hi {{ contact.first_name }}") is None


def test_ordinary_arithmetic_still_works() -> None:
    assert render_text("{{ '-' * 3 }}{{ 2 ** 10 }}{{ 3 * 4 }}", context()) == "---102412"


def test_runtime_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError):
        render_text("{{ 1 / 0 }}", context())
    with pytest.raises(TemplateError):
        render_text("{{ contact.fields.nope + 1 }}", context())


# Link tracking


def test_track_links_rewrites_http_links_only() -> None:
    html = (
        '<a href="https://shop.test/a?x=1&amp;y=2">A</a> '
        "<A class='b' HREF='http://shop.test/b'>B</A> "
        '<a title="a>b" href="https://shop.test/c">C</a> '
        '<a href="mailto:sales@shop.test">mail</a> <a href="tel:+3161234">tel</a> <a href="#top">top</a> '
        '<a data-href="https://x.test" href="/relative">rel</a> '
        '<a href="https://floe.test/u/tok">unsubscribe</a> '
        '<img src="https://shop.test/img.png">'
    )
    seen: list[str] = []

    def click_url(url: str) -> str | None:
        seen.append(url)
        return None if url.startswith("https://floe.test/u/") else f"https://floe.test/t/c/{len(seen)}?q=1&r=2"

    out = track_links(html, click_url)
    assert seen == [
        "https://shop.test/a?x=1&y=2",
        "http://shop.test/b",
        "https://shop.test/c",
        "https://floe.test/u/tok",
    ]
    assert '<a href="https://floe.test/t/c/1?q=1&amp;r=2">A</a>' in out
    assert "<A class='b' href=\"https://floe.test/t/c/2?q=1&amp;r=2\">B</A>" in out
    assert '<a title="a>b" href="https://floe.test/t/c/3?q=1&amp;r=2">C</a>' in out
    for kept in (
        "mailto:sales@shop.test",
        "tel:+3161234",
        'href="#top"',
        'data-href="https://x.test" href="/relative"',
    ):
        assert kept in out
    assert '<a href="https://floe.test/u/tok">unsubscribe</a>' in out
    assert '<img src="https://shop.test/img.png">' in out


# Plain-text part


def test_html_to_text() -> None:
    html = (
        "<html><head><title>T</title><style>p { color: red }</style></head><body>"
        "<h1>Welcome,   Ann</h1><p>Line one<br>line &amp; two</p>"
        '<p>See <a href="https://shop.test/x">our shop</a> or <a href="https://shop.test/y">https://shop.test/y</a>.</p>'
        '<ul><li>one</li><li>two</li></ul><p><a href="mailto:a@b.test">write us</a></p>'
        "</body></html>"
    )
    assert html_to_text(html) == (
        "Welcome, Ann\n\nLine one\nline & two\n\nSee our shop (https://shop.test/x) or https://shop.test/y.\n\n"
        "- one\n- two\n\nwrite us\n"
    )


def test_html_to_text_of_nothing_is_empty() -> None:
    assert html_to_text("<style>x</style>") == ""


# Signed tokens


def test_token_round_trip_is_compact_and_url_safe() -> None:
    signer = LinkSigner(SECRET)
    payload = {"p": "part-1", "f": "flow-1", "s": "welcome", "c": "c1", "k": "c", "u": "https://shop.test/?a=1&b=2"}
    token = signer.sign(payload)
    assert signer.verify(token) == payload
    assert "=" not in token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


small_dicts = st.dictionaries(st.text(max_size=8), st.text(max_size=40), max_size=6)


@given(small_dicts)
def test_token_round_trip_any_payload(payload: dict[str, str]) -> None:
    signer = LinkSigner(SECRET)
    assert signer.verify(signer.sign(payload)) == payload


@given(small_dicts, st.data())
def test_any_changed_character_is_detected(payload: dict[str, str], data: st.DataObject) -> None:
    signer = LinkSigner(SECRET)
    token = signer.sign(payload)
    index = data.draw(st.integers(0, len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=é"
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != token[index]]))
    with pytest.raises(BadToken):
        signer.verify(token[:index] + replacement + token[index + 1 :])


def test_tokens_from_another_secret_or_garbage_are_bad() -> None:
    token = LinkSigner(b"another-secret-of-enough-length!").sign({"c": "c1"})
    signer = LinkSigner(SECRET)
    for bad in (token, "", ".", "abc", "a.b.c", token + ".x", token.split(".")[0]):
        with pytest.raises(BadToken):
            signer.verify(bad)


def test_a_correctly_signed_non_object_is_bad() -> None:
    signer = LinkSigner(SECRET)
    encoded = "WzFd"  # base64url of "[1]": valid JSON, but not an object
    with pytest.raises(BadToken):
        signer.verify(f"{encoded}.{signer._mac(encoded)}")


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        LinkSigner(b"short")


# Phone numbers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+31 6 1234 5678", "+31612345678"),
        ("+31-6-12.34.56.78", "+31612345678"),
        ("0031 6 12345678", "+31612345678"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("\u00a0+32 470 12 34 56 ", "+32470123456"),
        ("06 12345678", None),
        ("612345678", None),
        ("+0 123 456 789", None),
        ("+31 6 1234 5678 ext 9", None),
        ("+123", None),
        ("+1234567890123456", None),
        ("", None),
        ("++31612345678", None),
    ],
)
def test_normalize_phone(raw: str, expected: str | None) -> None:
    assert normalize_phone(raw) == expected
    assert normalize_phone(raw, default_region="NL") == expected

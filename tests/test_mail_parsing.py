"""Reading received mail: what an agent would see of a message, whatever shape it arrives in."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.mail.parsing import MailUnreadable, html_to_text, parse_message

DATA = Path(__file__).parent / "data" / "mail"


def test_plain_message_headers_are_decoded() -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <Juergen@Example.COM>\r\n"
        b"To: Support <support@desk.example>, other@example.org\r\n"
        b"Cc: boss@example.org\r\n"
        b"Subject: =?iso-8859-1?q?Pr=FCfung?= der Rechnung\r\n"
        b"Message-ID: <abc.123@example.com>\r\n"
        b"In-Reply-To: <out-1@desk.example>\r\n"
        b"References: <first@example.com>\r\n <out-1@desk.example>\r\n"
        b"Date: Tue, 03 Mar 2026 10:15:00 +0100\r\n"
        b"\r\n"
        b"Hallo,\r\nbitte pr\xfcfen.\r\n"
    )
    mail = parse_message(raw)
    assert mail.from_address == "juergen@example.com"
    assert mail.from_name == "Jürgen Müller"
    assert mail.subject == "Prüfung der Rechnung"
    assert mail.to == ["support@desk.example", "other@example.org"]
    assert mail.cc == ["boss@example.org"]
    assert mail.message_id == "abc.123@example.com"
    assert mail.in_reply_to == ["out-1@desk.example"]
    assert mail.references == ["first@example.com", "out-1@desk.example"]
    assert mail.date == datetime(2026, 3, 3, 9, 15, tzinfo=UTC)
    # No charset declared and not UTF-8: read as Windows-1252, not replaced.
    assert "bitte prüfen." in mail.text
    assert mail.html is None


def test_unknown_charsets_are_decoded_with_replacement() -> None:
    raw = (
        b"From: a@example.com\nSubject: =?x-klingon?q?Hallo_=FF?=\n"
        b"Content-Type: text/plain; charset=x-klingon\n\nCaf\xc3\xa9 \xff ok\n"
    )
    mail = parse_message(raw)
    assert "Hallo" in mail.subject
    assert "\udcff" not in mail.subject
    assert mail.text.startswith("Caf")
    assert "ok" in mail.text


def test_multipart_alternative_keeps_both_bodies() -> None:
    raw = (
        b"From: a@example.com\nSubject: alt\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/alternative; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain; charset=utf-8\n\nplain words\n"
        b"--b\nContent-Type: text/html; charset=utf-8\n\n<p>html <b>words</b></p>\n--b--\n"
    )
    mail = parse_message(raw)
    assert mail.text.strip() == "plain words"
    assert mail.html is not None and "<b>words</b>" in mail.html


def test_html_only_mail_gets_a_text_body_without_scripts() -> None:
    raw = (
        b"From: a@example.com\nSubject: html\nContent-Type: text/html; charset=utf-8\n\n"
        b"<html><head><style>p{}</style><script>alert(1)</script></head>"
        b"<body><p>First&nbsp;line</p><div>Second</div></body></html>\n"
    )
    mail = parse_message(raw)
    assert mail.text == "First line\n\nSecond"
    assert "alert" not in mail.text
    assert "<script>" in (mail.html or "")  # unsanitised: the content branch cleans it


def test_inline_cid_image_and_real_attachment() -> None:
    gif = base64.b64encode(b"GIF89a\x01\x00\x01\x00fakegif").decode()
    raw = (
        "From: a@example.com\nSubject: pic\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="m"\n\n'
        '--m\nContent-Type: multipart/related; boundary="r"\n\n'
        '--r\nContent-Type: text/html\n\n<p>see <img src="cid:Logo.1@x"></p>\n'
        "--r\nContent-Type: image/gif\nContent-ID: <Logo.1@x>\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{gif}\n--r--\n"
        "--m\nContent-Type: application/pdf\n"
        "Content-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf\n"
        "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
        "--m\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--m--\n"
    ).encode()
    mail = parse_message(raw)
    by_name = {a.filename: a for a in mail.attachments}
    logo = next(a for a in mail.attachments if a.content_type == "image/gif")
    assert logo.inline and logo.content_id == "Logo.1@x"
    assert logo.data.startswith(b"GIF89a")
    assert by_name["Rechnung März.pdf"].data == b"%PDF-1.4\n"
    assert not by_name["Rechnung März.pdf"].inline
    unnamed = next(a for a in mail.attachments if a.content_type == "image/png")
    assert unnamed.filename.endswith(".png") and not unnamed.inline


def test_forwarded_message_is_kept_whole_as_eml() -> None:
    raw = (
        b"From: a@example.com\nSubject: Fwd: the thing\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="m"\n\n'
        b"--m\nContent-Type: text/plain\n\nsee below\n"
        b"--m\nContent-Type: message/rfc822\n\n"
        b"From: orig@example.org\nSubject: The thing\nMessage-ID: <inner@x>\n\ninner body\n"
        b"--m--\n"
    )
    mail = parse_message(raw)
    assert mail.text.strip() == "see below"
    assert mail.message_id is None  # the inner Message-ID is not the outer message's
    (fwd,) = mail.attachments
    assert fwd.filename == "The thing.eml"
    assert fwd.content_type == "message/rfc822"
    assert b"inner body" in fwd.data and b"orig@example.org" in fwd.data


def test_calendar_invite_is_kept_as_ics() -> None:
    raw = (
        b"From: a@example.com\nSubject: Invitation\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/alternative; boundary="a"\n\n'
        b"--a\nContent-Type: text/plain\n\nYou are invited\n"
        b"--a\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\n\n"
        b"BEGIN:VCALENDAR\nMETHOD:REQUEST\nEND:VCALENDAR\n--a--\n"
    )
    mail = parse_message(raw)
    (invite,) = mail.attachments
    assert invite.filename.endswith(".ics") and invite.content_type == "text/calendar"
    assert b"BEGIN:VCALENDAR" in invite.data
    assert mail.text.strip() == "You are invited"


def test_tnef_winmail_dat_is_unpacked() -> None:
    mail = parse_message((DATA / "mimekit" / "rich-text.eml").read_bytes())
    names = [a.filename for a in mail.attachments]
    assert "kitten-playing-with-a-christmas-tree.jpg" in names
    assert "winmail.dat" not in names
    kitten = next(a for a in mail.attachments if a.filename.startswith("kitten"))
    assert kitten.data[:3] == b"\xff\xd8\xff"  # a real JPEG came out of the TNEF blob
    assert "Christmas to remember" in mail.text


def test_broken_tnef_is_kept_as_a_file() -> None:
    raw = (
        b"From: a@example.com\nSubject: t\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="m"\n\n--m\nContent-Type: text/plain\n\nhi\n'
        b'--m\nContent-Type: application/ms-tnef; name="winmail.dat"\n'
        b"Content-Transfer-Encoding: base64\n\nbm90IHRuZWY=\n--m--\n"
    )
    mail = parse_message(raw)
    assert [a.filename for a in mail.attachments] == ["winmail.dat"]
    assert any("TNEF" in d for d in mail.defects)


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@example.com\rSubject: cr only\rMessage-ID: <cr@x>\r\rbody line\rsecond\r",
        b"From MAILER-DAEMON Tue Mar  3 10:00:00 2026\nFrom: a@example.com\nSubject: cr only\n"
        b"Message-ID: <cr@x>\n\nbody line\nsecond\n",
        b"\xef\xbb\xbfFrom: a@example.com\r\nSubject: cr only\r\nMessage-ID: <cr@x>\r\n\r\n"
        b"body line\r\nsecond\r\n",
    ],
    ids=["cr-only", "mbox-envelope", "bom-crlf"],
)
def test_line_end_variants_and_mbox_envelope(raw: bytes) -> None:
    mail = parse_message(raw)
    assert mail.subject == "cr only"
    assert mail.message_id == "cr@x"
    assert mail.from_address == "a@example.com"
    assert "second" in mail.text


def test_envelope_line_does_not_change_the_hash() -> None:
    body = b"From: a@example.com\nSubject: s\n\nx\n"
    assert parse_message(b"From a@b Tue Mar 3 2026\n" + body).sha256 == parse_message(body).sha256


def test_real_cr_only_bounce_from_sisimai() -> None:
    mail = parse_message((DATA / "sisimai" / "mac-lhost-exim-01.eml").read_bytes())
    assert mail.subject == "Mail delivery failed: returning message to sender"
    assert mail.from_address == "mailer-daemon@e1.example.org"
    assert mail.message_id == "E1P1ceB-000FL1-4q@e1.example.org"
    assert mail.message["X-Failed-Recipients"] == "kijitora@example.ed.jp"
    assert "could not be delivered" in mail.text


def test_missing_and_broken_headers_do_not_crash() -> None:
    raw = (
        b'From: "unterminated <nobody\nTo: ;;;@@@\nDate: yesterday at noon\n'
        b"Message-ID: not-bracketed-id\nSubject: =?utf-8?b?!!!notbase64?=\n"
        b'Content-Type: text/plain; charset="utf-8\n\nbody\n'
    )
    mail = parse_message(raw)
    assert mail.from_address is None
    assert mail.date is None
    assert mail.to == []
    assert mail.message_id == "not-bracketed-id"
    assert mail.text.strip() == "body"


def test_very_long_lines_and_deep_nesting() -> None:
    long_line = b"x" * 200_000
    nested = b"".join(
        b'--b%d\nContent-Type: multipart/mixed; boundary="b%d"\n\n' % (i, i + 1) for i in range(60)
    )
    raw = (
        b"From: a@example.com\nSubject: " + b"s" * 5000 + b"\n"
        b'Content-Type: multipart/mixed; boundary="b0"\n\n' + nested + b"--b60\n"
        b"Content-Type: text/plain\n\n" + long_line + b"\n"
    )
    mail = parse_message(raw)
    assert len(mail.subject) == 5000
    assert "multipart nesting too deep" in mail.defects


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n", b"\x00\x01\x02 binary garbage \xff" * 30])
def test_not_a_message_is_unreadable(raw: bytes) -> None:
    with pytest.raises(MailUnreadable):
        parse_message(raw)


def test_nul_and_surrogates_never_reach_the_text() -> None:
    raw = b"From: a@example.com\nSubject: a\x00b\nContent-Type: text/plain\n\nnul\x00here\n"
    mail = parse_message(raw)
    assert "\x00" not in mail.subject and "\x00" not in mail.text


def test_html_to_text_keeps_paragraphs() -> None:
    assert html_to_text("<p>a</p><p>b<br>c</p>") == "a\n\nb\nc"


def _stalwart_expectations(path: Path) -> tuple[str | None, str | None, list[str]]:
    """Subject, first sender address and attachment names as stalwart's parser read them."""
    tree = json.loads(path.read_text())
    subject = sender = None
    for head in tree["parts"][0]["headers"]:
        name, value = head["name"], head["value"]
        if name == "subject" and isinstance(value, dict) and "Text" in value:
            subject = value["Text"]
        if name == "from" and isinstance(value, dict) and "Address" in value:
            listed = value["Address"].get("List") or []
            if listed and listed[0].get("address") and "@" in listed[0]["address"]:
                sender = listed[0]["address"].lower()
    names = []
    for index in tree["attachments"]:
        for head in tree["parts"][index]["headers"]:
            if head["name"] in ("content_disposition", "content_type"):
                attrs = (head["value"].get("ContentType") or {}).get("attributes") or []
                names += [a["value"] for a in attrs if a["name"] in ("filename", "name")]
    return subject, sender, list(dict.fromkeys(names))


@pytest.mark.parametrize("eml", sorted((DATA / "stalwart").glob("*.eml")), ids=lambda p: p.name)
def test_stalwart_expected_parse_results(eml: Path) -> None:
    subject, sender, names = _stalwart_expectations(eml.with_suffix(".json"))
    mail = parse_message(eml.read_bytes())
    if subject is not None:
        assert mail.subject == " ".join(subject.split())
    if sender is not None:
        assert mail.from_address == sender
    ours = {a.filename for a in mail.attachments}
    for name in names:
        assert name in ours


def test_sender_addresses_in_broken_or_utf8_headers_are_still_found() -> None:
    bare = parse_message(b"From: Big Bug bb@bug.com\nSubject: x\n\nhi\n")
    assert bare.from_address == "bb@bug.com"
    at_in_name = parse_message(b"From: jang@xyzlinu <jang@xyzlinux1.it>\nSubject: x\n\nhi\n")
    assert at_in_name.from_address == "jang@xyzlinux1.it"
    utf8 = parse_message(
        (DATA / "mikel_mail/spec/fixtures/emails/rfc6532/utf8_headers.eml").read_bytes()
    )
    assert utf8.from_address == "jdöe@xn--mchine-bua.example"
    assert utf8.from_name == "Jöhn Doe" and utf8.subject == "Säying Hello"


def test_external_body_parts_are_named_as_their_content_type_says() -> None:
    raw = (
        b"From: a@example.com\nSubject: where\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="m"\n\n--m\nContent-Type: text/plain\n\nsee\n'
        b'--m\nContent-Type: message/external-body; name="BodyFormats.ps";\n'
        b'  site="ftp.example.org"; access-type=ANON-FTP; directory="pub"\n\n'
        b"Content-type: application/postscript\n\n--m--\n"
    )
    (part,) = parse_message(raw).attachments
    assert part.filename == "BodyFormats.ps" and part.content_type == "application/postscript"

"""Real-world mail from other projects' test suites (tests/data/mail, see its README).

Messages nobody here wrote: the sisimai set of 550+ bounces and auto-replies from real
mail servers must be recognised as robots (so the desk never answers them), and the
other corpora's ordinary mail must not be (so no customer is turned away).
"""

from __future__ import annotations

import json
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.mail.ingest import file_message
from app.mail.parsing import parse_message
from app.mail.robots import Robot, RobotKind, detect_robot
from app.models.inbound import InboundMail, MailOutcome, MailSource

DATA = Path(__file__).parent / "data" / "mail"
SISIMAI = DATA / "sisimai_set_of_emails"
OWN = ["support@desk.example"]

# Sisimai files the desk deliberately does not treat as robots, and why.
NOT_ROBOTS = {
    # A person forwarding a bounce they received ("Fwd: Returned mail") to ask about it:
    # sisimai reads the quoted bounce, but for a help desk it is a customer's question.
    "maildir/bsd/lhost-sendmail-14.eml",
}
# Sisimai files that are robots of another kind than a bounce: notices from a list
# manager (fml) to a poster, recognised by the list manager's headers.
LIST_MANAGER_NOTICES = {"maildir/bsd/lhost-fml-02.eml", "maildir/bsd/lhost-fml-03.eml"}

# Every robot among the other corpora, with the kind it must get; everything else there is
# mail a person wrote and must get ``None``.
OTHER_ROBOTS: dict[str, RobotKind] = {
    "cpython_email_data/msg_02.txt": RobotKind.LIST,  # Mailman digest
    "cpython_email_data/msg_16.txt": RobotKind.BOUNCE,
    "cpython_email_data/msg_25.txt": RobotKind.BOUNCE,  # MAILER-DAEMON, no report
    "cpython_email_data/msg_32.txt": RobotKind.AUTO_REPLY,  # list mail, Precedence: bulk
    "cpython_email_data/msg_33.txt": RobotKind.AUTO_REPLY,  # list mail, Precedence: bulk
    "cpython_email_data/msg_43.txt": RobotKind.BOUNCE,
    "enmime/dsn/testdata/delayed_dsn.raw": RobotKind.BOUNCE,
    "enmime/dsn/testdata/dsn_with_multipart_alternative.raw": RobotKind.BOUNCE,
    "enmime/dsn/testdata/multi_recipient_dsn.raw": RobotKind.BOUNCE,
    "enmime/dsn/testdata/simple_dsn.raw": RobotKind.BOUNCE,
    "enmime/dsn/testdata/simple_dsn_with_html.raw": RobotKind.BOUNCE,
    "enmime/testdata/mail/multipart-wo-boundary.raw": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/apache-message-news-mime.eml": RobotKind.AUTO_REPLY,
    "flanker/tests/fixtures/messages/disposition-notification.eml": RobotKind.AUTO_REPLY,
    "flanker/tests/fixtures/messages/from-encoding.eml": RobotKind.AUTO_REPLY,
    "flanker/tests/fixtures/messages/message-external-body.eml": RobotKind.AUTO_REPLY,
    "flanker/tests/fixtures/messages/bounce/broken-mime.eml": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/bounce/delayed-broken.eml": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/bounce/delayed.eml": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/bounce/gmail-invalid-address.eml": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/bounce/gmail-no-dns.eml": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/bounce/mailbox-full.eml": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/bounce/no-mx.eml": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/bounce/office365.eml": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/bounce/zed.eml": RobotKind.BOUNCE,
    "flanker/tests/fixtures/messages/complaints/aol.eml": RobotKind.AUTO_REPLY,  # ARF
    "flanker/tests/fixtures/messages/complaints/yahoo.eml": RobotKind.AUTO_REPLY,  # ARF
    "mikel_mail/spec/fixtures/emails/error_emails/bad_date_header.eml": RobotKind.AUTO_REPLY,
    "mikel_mail/spec/fixtures/emails/error_emails/empty_in_reply_to.eml": RobotKind.LIST,
    "mikel_mail/spec/fixtures/emails/mime_emails/raw_email_with_mimepart_without_content_type.eml": (  # noqa: E501
        RobotKind.BOUNCE
    ),
    "mikel_mail/spec/fixtures/emails/multipart_report_emails/multi_address_bounce1.eml": (
        RobotKind.BOUNCE
    ),
    "mikel_mail/spec/fixtures/emails/multipart_report_emails/multi_address_bounce2.eml": (
        RobotKind.BOUNCE
    ),
    "mikel_mail/spec/fixtures/emails/multipart_report_emails/multipart_report_multiple_status.eml": (  # noqa: E501
        RobotKind.BOUNCE
    ),
    "mikel_mail/spec/fixtures/emails/multipart_report_emails/report_422.eml": RobotKind.BOUNCE,
    "mikel_mail/spec/fixtures/emails/multipart_report_emails/report_530.eml": RobotKind.BOUNCE,
    "mimekit/UnitTests/TestData/messages/bounce.txt": RobotKind.BOUNCE,
    "mimekit/UnitTests/TestData/messages/delivery-status-multiple-blank-lines.txt": (
        RobotKind.BOUNCE
    ),
    "mimekit/UnitTests/TestData/messages/delivery-status-no-blank-line.txt": RobotKind.BOUNCE,
    "mimekit/UnitTests/TestData/messages/delivery-status.anonymized.eml": RobotKind.BOUNCE,
    "mimekit/UnitTests/TestData/messages/delivery-status.txt": RobotKind.BOUNCE,
    "mimekit/UnitTests/TestData/messages/delivery-status2.txt": RobotKind.BOUNCE,
    "mimekit/UnitTests/TestData/messages/disposition-notification.txt": RobotKind.AUTO_REPLY,
    "nodemailer_mailparser/test/fixtures/delivery-status.eml": RobotKind.BOUNCE,
    # In sisimai's "not a bounce" folder because sisimai once misparsed it, but it is a
    # German provider's mailbox-full notice from postmaster with a null sender: a bounce.
    "sisimai_set_of_emails/maildir/not/rb-issue-368-bug.eml": RobotKind.BOUNCE,
    "spamscope_mail_parser/tests/mails/mail_malformed_2": RobotKind.BOUNCE,
    "spamscope_mail_parser/tests/mails/mail_test_13": RobotKind.LIST,
    "spamscope_mail_parser/tests/mails/mail_test_16": RobotKind.AUTO_REPLY,  # spam, Precedence
    "spamscope_mail_parser/tests/mails/mail_test_5": RobotKind.AUTO_REPLY,
    "spamscope_mail_parser/tests/mails/mail_test_6": RobotKind.LIST,
    "stalwart_mail_parser/resources/eml/thirdparty/014.eml": RobotKind.LIST,
}


# The corpora this file copied (see tests/data/mail/README.md); other folders there belong
# to other tests.
CORPORA = (
    "cpython_email_data",
    "django_helpdesk",
    "enmime",
    "flanker",
    "mikel_mail",
    "mimekit/UnitTests",
    "nodemailer_mailparser",
    "spamscope_mail_parser",
    "stalwart_mail_parser",
    "sisimai_set_of_emails/maildir/not",
)


def corpus_messages() -> list[Path]:
    """Every message file of ``CORPORA`` (the sisimai bounce set is tested on its own)."""
    found = []
    for corpus in CORPORA:
        for path in sorted((DATA / corpus).rglob("*")):
            if not path.is_file() or path.suffix in (".json", ".md"):
                continue
            if "LICENSE" in path.name or path.name == "COPYING" or path.parent.name == "LICENSES":
                continue
            found.append(path)
    return found


def detect_file(path: Path) -> Robot | None:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    return detect_robot(message, OWN)


def test_the_corpora_are_there() -> None:
    """A missing copy must fail loudly, not make the loops below vacuous."""
    assert len(corpus_messages()) > 400
    assert len(json.loads((SISIMAI / "expected_reasons.json").read_text())) > 500


def test_sisimai_bounces_and_auto_replies_are_recognised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = json.loads((SISIMAI / "expected_reasons.json").read_text())
    missed: list[str] = []
    wrong_kind: list[str] = []
    hard_without_recipient: list[str] = []
    hard = 0
    for name, results in sorted(expected.items()):
        robot = detect_file(SISIMAI / name)
        reasons = {result["reason"] for result in results}
        if robot is None:
            if name not in NOT_ROBOTS:
                missed.append(name)
            continue
        if not results or reasons == {"vacation"}:
            wanted = RobotKind.AUTO_REPLY  # feedback reports and vacation replies
        elif name in LIST_MANAGER_NOTICES:
            wanted = RobotKind.LIST
        else:
            wanted = RobotKind.BOUNCE
        if robot.kind is not wanted:
            wrong_kind.append(f"{name}: {robot.kind} ({robot.reason}), expected {wanted}")
        if results and all(result["hardbounce"] for result in results):
            hard += 1
            if robot.bounce is None or not robot.bounce.recipients:
                hard_without_recipient.append(name)
    recognised = len(expected) - len(missed) - len(NOT_ROBOTS)
    with capsys.disabled():
        print(
            f"\nsisimai: {recognised}/{len(expected)} recognised as robots "
            f"({recognised / len(expected):.1%}); deliberately not: {sorted(NOT_ROBOTS)}; "
            f"hard bounces naming the failed recipient: "
            f"{hard - len(hard_without_recipient)}/{hard}"
        )
    assert missed == []
    assert wrong_kind == []
    # The failed address is how a contact gets flagged; allow a few MTAs whose text we
    # cannot read, not more.
    assert len(hard_without_recipient) <= hard // 50, hard_without_recipient


def test_no_robot_in_the_other_corpora_but_the_known_ones() -> None:
    found: dict[str, RobotKind] = {}
    for path in corpus_messages():
        robot = detect_file(path)
        if robot is not None:
            found[path.relative_to(DATA).as_posix()] = robot.kind
    false_robots = {name: kind for name, kind in found.items() if name not in OTHER_ROBOTS}
    assert false_robots == {}, "mail a person wrote was taken for a robot"
    assert found == OTHER_ROBOTS


def test_sisimai_bounce_names_the_original_message() -> None:
    """Filing a bounce on its ticket needs the returned message's id or subject."""
    expected = json.loads((SISIMAI / "expected_reasons.json").read_text())
    bounces = with_original = 0
    for name in expected:
        robot = detect_file(SISIMAI / name)
        if robot is None or robot.bounce is None:
            continue
        bounces += 1
        if robot.bounce.original_message_id or robot.bounce.original_subject:
            with_original += 1
    assert bounces > 500
    assert with_original / bounces > 0.85, (with_original, bounces)


# -- the whole pipeline ---------------------------------------------------------------

HELD_OUTCOMES = {MailOutcome.QUARANTINED, MailOutcome.IGNORED, MailOutcome.REVIEW}


def test_every_corpus_message_is_filed_or_held_with_a_reason(
    app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    """1,000+ real messages through ``file_message``: none raises, none vanishes.

    Every message gets a row (or is a recognised duplicate of one); whatever is held says
    why; no bounce or auto-reply of the sisimai set opens a ticket.
    """
    # The flood throttle would quarantine most of sisimai's MAILER-DAEMONs for being many,
    # hiding what the pipeline does with each; it is tested on its own in test_mail_ingest.
    app.config["MAIL_SENDER_LIMIT_PER_HOUR"] = 1_000_000
    sisimai = sorted((SISIMAI / "maildir" / "bsd").glob("*.eml"))
    outcomes: Counter[str] = Counter()
    robots_with_tickets: list[str] = []
    without_reason: list[str] = []
    with app.app_context():
        for path in corpus_messages() + sisimai:
            name = path.relative_to(DATA).as_posix()
            filed = file_message(path.read_bytes(), source=MailSource.IMPORT, source_ref=name)
            outcome = MailOutcome(filed.outcome)
            outcomes[outcome.value] += 1
            if outcome in HELD_OUTCOMES and not filed.reason:
                without_reason.append(name)
            if outcome is MailOutcome.DUPLICATE:
                continue
            row = db.session.get(InboundMail, filed.inbound_id)
            assert row is not None and row.outcome == outcome.value, name
            assert row.raw_file_id is not None, f"{name}: the original is not kept"
            if path in sisimai and outcome is MailOutcome.CREATED:
                robots_with_tickets.append(name)
        rows = db.session.scalar(select(func.count(InboundMail.id)))
    with capsys.disabled():
        print(f"\npipeline over {sum(outcomes.values())} corpus messages: {dict(outcomes)}")
    assert without_reason == []
    assert rows == sum(outcomes.values()) - outcomes[MailOutcome.DUPLICATE.value]
    # The one sisimai file that is a person's question (see NOT_ROBOTS) may open a ticket.
    assert robots_with_tickets == [
        name for name in robots_with_tickets if name.endswith(tuple(NOT_ROBOTS))
    ]


# -- stalwart's expected parse results ------------------------------------------------

STALWART = DATA / "stalwart_mail_parser" / "resources" / "eml"
STALWART_XFAIL = {
    "rfc/001.eml": (
        "a message/external-body part named '/u/nsb/writing/rfcs/RFC-MIME.ps' keeps its "
        "path in stalwart's results; we store the last segment only (a file name never "
        "carries a path into the vault or a download), and the third part has no name"
    ),
}


def stalwart_expectations(path: Path) -> tuple[str | None, str | None, list[str]]:
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
    names: list[str] = []
    for index in tree["attachments"]:
        for head in tree["parts"][index]["headers"]:
            if head["name"] in ("content_disposition", "content_type") and isinstance(
                head["value"], dict
            ):
                attrs = (head["value"].get("ContentType") or {}).get("attributes") or []
                names += [a["value"] for a in attrs if a["name"] in ("filename", "name")]
    return subject, sender, list(dict.fromkeys(names))


def stalwart_cases() -> list[Any]:
    cases = []
    for eml in sorted(STALWART.glob("*/*.eml")):
        name = eml.relative_to(STALWART).as_posix()
        marks = []
        if name in STALWART_XFAIL:
            marks = [pytest.mark.xfail(reason=STALWART_XFAIL[name], strict=True)]
        cases.append(pytest.param(eml, id=name, marks=marks))
    return cases


def test_stalwart_corpus_is_there() -> None:
    assert len(stalwart_cases()) > 100


@pytest.mark.parametrize("eml", stalwart_cases())
def test_stalwart_subject_sender_and_attachment_names(eml: Path) -> None:
    subject, sender, names = stalwart_expectations(eml.with_suffix(".json"))
    mail = parse_message(eml.read_bytes())
    if subject is not None:
        # Stalwart keeps folding whitespace inside the subject; ParsedMail shows it unfolded.
        assert mail.subject == " ".join(subject.split())
    if sender is not None:
        assert mail.from_address == sender
    ours = {attachment.filename for attachment in mail.attachments}
    assert [name for name in names if name not in ours] == []

"""Robot detection: what a desk must never answer, and what it must never turn away.

Each case is a message a real server or client writes; the assertions are what the desk
does with it (bounce filed with the failed address, auto-reply not answered, customer mail
treated as a customer's).
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from app.mail.robots import Robot, RobotKind, detect_robot, detect_robot_in_bytes

OWN = ["support@desk.example"]


def mail(subject: str = "Printer on floor 3 is jammed", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = headers.pop("From", "Ada Customer <ada@customer.example>")
    message["To"] = headers.pop("To", "support@desk.example")
    message["Subject"] = subject
    message["Message-ID"] = "<m1@customer.example>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hello,\nthe printer is jammed again.\nAda\n")
    return message


def reparse(message: EmailMessage) -> EmailMessage:
    """Through bytes and back, as the pipeline sees it."""
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def detect(message: EmailMessage) -> Robot | None:
    return detect_robot(reparse(message), OWN)


# -- people ---------------------------------------------------------------------------


def test_a_customer_mail_is_no_robot() -> None:
    assert detect(mail()) is None


@pytest.mark.parametrize(
    "subject",
    [
        "Question about my vacation booking",
        "Re: Out of office hours support?",  # a reply, and the words are not at the start
        "Urlaubsantrag funktioniert nicht",
        "Re: [#T-104233] Automatic reply was sent to my customers by mistake",
        "Delivery of order 1234 is late",
        "My mailbox is full, can you help?",
    ],
)
def test_customer_subjects_that_merely_mention_robot_words(subject: str) -> None:
    assert detect(mail(subject)) is None


def test_auto_submitted_no_is_a_person() -> None:
    assert detect(mail(Auto_Submitted="no")) is None


def test_list_unsubscribe_alone_is_a_person() -> None:
    """CRM and sales tools add List-Unsubscribe to one-to-one mail: still a customer."""
    message = mail(List_Unsubscribe="<https://crm.example/unsub/ada>")
    assert detect(message) is None


def test_our_own_google_group_relaying_a_customer_is_not_a_list() -> None:
    message = mail(
        List_Id="<support.desk.example>",
        List_Post="<mailto:support@desk.example>",
        List_Unsubscribe="<mailto:support+unsubscribe@desk.example>",
    )
    assert detect(message) is None


# -- auto-replies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason_part"),
    [
        ({"Auto_Submitted": "auto-replied"}, "Auto-Submitted"),
        ({"Auto_Submitted": "auto-generated"}, "Auto-Submitted"),
        ({"X_Autoreply": "yes"}, "X-Autoreply"),
        ({"X_Autorespond": "Out of office"}, "X-Autorespond"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "junk"}, "Precedence: junk"),
        ({"X_Auto_Response_Suppress": "All"}, "X-Auto-Response-Suppress"),
        ({"X_Auto_Response_Suppress": "DR, RN, NRN, OOF, AutoReply"}, "X-Auto-Response-Suppress"),
    ],
)
def test_auto_reply_headers(headers: dict[str, str], reason_part: str) -> None:
    robot = detect(mail("Re: your ticket", **headers))
    assert robot is not None
    assert robot.kind is RobotKind.AUTO_REPLY
    assert reason_part in robot.reason
    assert robot.bounce is None


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Printer on floor 3",
        "Auto reply: Printer",
        "Autoreply: Printer",
        "Out of Office: Printer",
        "Out of the office until Monday",
        "I am out of the office",
        "Away from the office",
        "On vacation",
        "Vacation reply: Printer",
        "Abwesenheitsnotiz: Drucker",
        "Automatische Antwort: Drucker",
        "Ich bin nicht im Büro",
        "Ich bin zurzeit im Urlaub",
        "Urlaub: zurück am 3.1.",
        "=?utf-8?q?Abwesenheitsnotiz=3A_Drucker?=",
    ],
)
def test_vacation_subjects_in_english_and_german(subject: str) -> None:
    raw = (
        f"From: Ada <ada@customer.example>\nTo: support@desk.example\nSubject: {subject}\n"
        "Content-Type: text/plain; charset=utf-8\n\nBack on Monday.\n"
    ).encode()
    robot = detect_robot_in_bytes(raw, OWN)
    assert robot is not None and robot.kind is RobotKind.AUTO_REPLY, subject


# -- own mail and lists ---------------------------------------------------------------


def test_mail_from_our_own_address_is_own_whatever_the_case() -> None:
    robot = detect(mail(From="Support <Support@Desk.Example>"))
    assert robot is not None and robot.kind is RobotKind.OWN
    assert "support@desk.example" in robot.reason


def test_own_address_beats_auto_reply_headers() -> None:
    """Our own autoresponse coming back is a loop: OWN says so more precisely."""
    robot = detect(mail(From="support@desk.example", Auto_Submitted="auto-replied"))
    assert robot is not None and robot.kind is RobotKind.OWN


@pytest.mark.parametrize(
    "headers",
    [
        {"List_Id": "Python users <python-list.python.org>"},
        {"Precedence": "list"},
        {"Mailing_List": "contact users-help@example.org; run by ezmlm"},
        {
            "List_Unsubscribe": "<mailto:leave@lists.example>",
            "List_Post": "<mailto:l@lists.example>",
        },
    ],
)
def test_mailing_list_traffic(headers: dict[str, str]) -> None:
    robot = detect(mail(**headers))
    assert robot is not None and robot.kind is RobotKind.LIST


# -- bounces --------------------------------------------------------------------------


def _original() -> EmailMessage:
    original = EmailMessage()
    original["From"] = "support@desk.example"
    original["To"] = "gone@customer.example"
    original["Subject"] = "[#T-104233] Your printer ticket"
    original["Message-ID"] = "<reply-7@desk.example>"
    original.set_content("We replaced the drum.")
    return original


def dsn(action: str = "failed", status: str = "5.1.1", headers_only: bool = False) -> bytes:
    report = EmailMessage()
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.customer.example>"
    report["To"] = "support@desk.example"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Auto-Submitted"] = "auto-replied"
    report.set_content("I'm sorry to have to inform you that your message could not be delivered.")
    report.make_mixed()
    report.replace_header(
        "Content-Type", 'multipart/report; report-type=delivery-status; boundary="b1"'
    )
    status_text = (
        "Reporting-MTA: dns; mx.customer.example\n\n"
        "Final-Recipient: rfc822; Gone@Customer.Example\n"
        "Original-Recipient: rfc822;gone@customer.example\n"
        f"Action: {action}\n"
        f"Status: {status}\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <gone@customer.example>: Recipient address rejected:\n"
        " User unknown in virtual mailbox table\n"
    )
    body = (
        "--b1\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        "--b1\nContent-Type: message/delivery-status\n\n" + status_text + "\n"
    )
    if headers_only:
        headers = _original().as_string().split("\n\n", 1)[0]
        body += "--b1\nContent-Type: text/rfc822-headers\n\n" + headers + "\n\n"
    else:
        body += "--b1\nContent-Type: message/rfc822\n\n" + _original().as_string() + "\n"
    body += "--b1--\n"
    head = report.as_string().split("\n\n", 1)[0]
    return (head + "\n\n" + body).encode()


def test_dsn_names_failed_recipient_status_diagnostic_and_original() -> None:
    robot = detect_robot_in_bytes(dsn(), OWN)
    assert robot is not None and robot.kind is RobotKind.BOUNCE
    assert robot.bounce is not None
    assert robot.bounce.recipients == ["gone@customer.example"]
    assert robot.bounce.status == "5.1.1"
    assert robot.bounce.diagnostic is not None
    assert "User unknown" in robot.bounce.diagnostic
    assert robot.bounce.original_message_id == "reply-7@desk.example"
    assert robot.bounce.original_subject == "[#T-104233] Your printer ticket"


def test_dsn_with_only_the_original_headers() -> None:
    robot = detect_robot_in_bytes(dsn(headers_only=True), OWN)
    assert robot is not None and robot.bounce is not None
    assert robot.bounce.original_message_id == "reply-7@desk.example"
    assert robot.bounce.original_subject == "[#T-104233] Your printer ticket"


def test_delay_notice_is_a_robot_but_flags_nobody() -> None:
    """ "Still trying" is not a failure: no contact may be marked as bounced for it."""
    robot = detect_robot_in_bytes(dsn(action="delayed", status="4.4.7"), OWN)
    assert robot is not None and robot.kind is RobotKind.BOUNCE
    assert robot.bounce is not None
    assert robot.bounce.recipients == []
    assert robot.bounce.status == "4.4.7"


QMAIL = b"""Return-Path: <>
From: MAILER-DAEMON@mx4.customer.example
To: support@desk.example
Subject: failure notice

Hi. This is the qmail-send program at mx4.customer.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<gone@customer.example>:
remote host 192.0.2.32 said: 550 Unknown user gone@customer.example (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <support@desk.example>
Message-ID: <reply-7@desk.example>
From: support@desk.example
To: gone@customer.example
Subject: [#T-104233] Your printer ticket

We replaced the drum.
"""

EXIM = b"""Return-path: <>
From: Mail Delivery System <Mailer-Daemon@mail.customer.example>
To: support@desk.example
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: gone@customer.example
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gone@customer.example
    SMTP error from remote mail server after RCPT TO:<gone@customer.example>:
    550 5.1.1 User unknown

------ This is a copy of the message, including all the headers. ------

Message-ID: <reply-7@desk.example>
From: support@desk.example
Subject: [#T-104233] Your printer ticket

We replaced the drum.
"""

POSTFIX_NO_REPORT = b"""Return-Path: <>
From: postmaster@customer.example (Mail Delivery System)
To: support@desk.example
Subject: Undelivered Mail Returned to Sender

This is the mail system at host mx.customer.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<gone@customer.example>: host mx2.customer.example[192.0.2.9] said: 550 5.1.1
    <gone@customer.example>: Recipient address rejected: User unknown

Message-ID: <reply-7@desk.example>
Subject: [#T-104233] Your printer ticket
"""


@pytest.mark.parametrize(
    ("raw", "why"),
    [(QMAIL, "MAILER-DAEMON"), (EXIM, "MAILER-DAEMON"), (POSTFIX_NO_REPORT, "bounce subject")],
)
def test_non_standard_bounces(raw: bytes, why: str) -> None:
    robot = detect_robot_in_bytes(raw, OWN)
    assert robot is not None and robot.kind is RobotKind.BOUNCE, robot
    assert why in robot.reason
    assert robot.bounce is not None
    assert robot.bounce.recipients == ["gone@customer.example"]
    assert robot.bounce.status == "5.1.1"
    assert robot.bounce.original_message_id == "reply-7@desk.example"
    assert robot.bounce.original_subject == "[#T-104233] Your printer ticket"


def test_exim_failed_recipients_header_alone_is_enough() -> None:
    raw = EXIM.replace(
        b"Mail Delivery System <Mailer-Daemon@mail.customer.example>",
        b"relay@mail.customer.example",
    ).replace(b"Subject: Mail delivery failed", b"Subject: Notice")
    robot = detect_robot_in_bytes(raw, OWN)
    assert robot is not None and robot.kind is RobotKind.BOUNCE
    assert "X-Failed-Recipients" in robot.reason


def test_a_customer_forwarding_a_bounce_is_a_person() -> None:
    """They want help with it; answering them is right."""
    raw = (
        b"From: Ada <ada@customer.example>\nTo: support@desk.example\n"
        b"Subject: Fwd: Undelivered Mail Returned to Sender\n\n"
        b"Why did this bounce?\n\n> This is the mail system at host mx.\n"
    )
    assert detect_robot_in_bytes(raw, OWN) is None


def test_postmaster_writing_as_a_person_is_a_person() -> None:
    raw = (
        b"From: postmaster@customer.example\nTo: support@desk.example\n"
        b"Subject: New SPF record for your mails\n\nPlease update your SPF record.\n"
    )
    assert detect_robot_in_bytes(raw, OWN) is None


def test_feedback_report_and_read_receipt_flag_nobody() -> None:
    for report_type in ("feedback-report", "disposition-notification"):
        raw = (
            "From: staff@isp.example\nTo: support@desk.example\nSubject: report\n"
            f'Content-Type: multipart/report; report-type={report_type}; boundary="x"\n\n'
            "--x\nContent-Type: text/plain\n\nA report.\n--x--\n"
        ).encode()
        robot = detect_robot_in_bytes(raw, OWN)
        assert robot is not None and robot.kind is RobotKind.AUTO_REPLY
        assert robot.bounce is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage without headers",
        b"From: <<<@@@>>>\nSubject: =?bogus?q?x?=\nContent-Type: multipart/report; "
        b"report-type=delivery-status\n\nno boundary at all\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=z\n\n"
        b"--z\nContent-Type: message/delivery-status\n\n\xff\xfe: \x00\n\n--z--\n",
        b"Auto-Submitted:\nPrecedence:\nList-Id:\nFrom:\n\n",
    ],
)
def test_malformed_messages_never_raise(raw: bytes) -> None:
    detect_robot_in_bytes(raw, OWN)

"""System mail templates: the shipped defaults, the sandbox, refusal at save, fallback at
send, and the portal's mails rendered through them."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from app.accounts import emailed_links
from app.actor import Actor
from app.extensions import db
from app.mail import system_mail
from app.mail.identities import save_identity
from app.mail.system_mail import Kind, Source, TemplateRefused
from app.models import Role
from app.models.audit import AuditLog
from app.models.mail import SenderIdentity, SystemTemplate
from app.models.people import User
from tests.services import SmtpSink
from tests.test_relay import use_smtp

# Ways out of a Jinja template that an unsandboxed environment allows.
ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ customer_name.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ ticket_number.format.__self__.__class__ }}",
    "{{ (ticket_number|attr('__class__')).__mro__ }}",
]


@pytest.fixture
def identities(ctx: None) -> dict[str, SenderIdentity]:
    en = save_identity(Actor.system(), address="support@desk.test", name="Desk", is_default=True)
    de = save_identity(Actor.system(), address="kontakt@desk.test", name="Kontakt", language="de")
    db.session.commit()
    return {"en": en, "de": de}


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_has_english_and_german_defaults_that_render(kind: Kind) -> None:
    english = system_mail.render_source(
        kind, system_mail.default_source(kind, "en"), system_mail.sample_values(kind), "en"
    )
    german = system_mail.render_source(
        kind, system_mail.default_source(kind, "de"), system_mail.sample_values(kind), "de"
    )
    assert english.subject and german.subject and english.subject != german.subject
    assert english.text != german.text
    assert "{{" not in english.text + german.text + english.subject + german.subject
    for variable, sample in system_mail.sample_values(kind).items():
        if variable in ("ticket_number", "url", "code", "portal_url", "ticket_url"):
            assert str(sample) in english.text and str(sample) in german.text, variable


def test_a_language_without_defaults_uses_english() -> None:
    assert system_mail.default_source(Kind.AUTORESPONSE, "fr") == system_mail.default_source(
        Kind.AUTORESPONSE, "en"
    )
    assert system_mail.language_of("de-AT") == "de" and system_mail.language_of(None) == "en"


def test_pending_reminder_renders_with_its_values(identities: dict[str, SenderIdentity]) -> None:
    values = {
        "ticket_number": "T-1",
        "ticket_subject": "VPN",
        "customer_name": "Nora",
        "portal_url": "https://desk.test/portal/tickets/T-1",
        "identity_name": "Desk",
        "pending_since": "2026-11-30",
        "close_days": 7,
    }
    rendered = system_mail.render(Kind.PENDING_REMINDER, identities["en"], "en", values)
    assert rendered.subject == "[#T-1] We are waiting for your answer: VPN"
    assert "on 2026-11-30" in rendered.text and "within 7 days" in rendered.text
    german = system_mail.render(Kind.PENDING_REMINDER, identities["de"], "de", values)
    assert "am 2026-11-30" in german.text and "innerhalb von 7 Tagen" in german.text


def test_auto_close_notice_renders_with_its_values(identities: dict[str, SenderIdentity]) -> None:
    values = {
        "ticket_number": "T-2",
        "ticket_subject": "Printer",
        "customer_name": "Nora",
        "portal_url": "https://desk.test/portal/tickets/T-2",
        "identity_name": "Desk",
        "reopen_days": 30,
    }
    rendered = system_mail.render(Kind.AUTO_CLOSE, identities["en"], "en", values)
    assert rendered.subject == "[#T-2] Your request was closed: Printer"
    assert "within 30 days" in rendered.text and values["portal_url"] in rendered.text
    german = system_mail.render(Kind.AUTO_CLOSE, identities["de"], "de", values)
    assert german.subject == "[#T-2] Ihre Anfrage wurde geschlossen: Printer"


def test_escalation_notice_renders_with_its_values(identities: dict[str, SenderIdentity]) -> None:
    values = {
        "ticket_number": "T-3",
        "ticket_subject": "Outage",
        "ticket_url": "https://desk.test/agent/tickets/T-3",
        "recipient_name": "Sam",
        "assignee_name": "",
        "priority": "Urgent",
        "target": "first response",
        "due_at": "2026-12-02 14:00",
        "identity_name": "Desk",
    }
    rendered = system_mail.render(Kind.ESCALATION, identities["en"], "en", values)
    assert rendered.subject == "[#T-3] Escalated (first response overdue): Outage"
    assert "Hello Sam," in rendered.text and "Assigned to: nobody" in rendered.text
    assert "due 2026-12-02 14:00" in rendered.text and values["ticket_url"] in rendered.text


def test_reopen_notice_renders_in_german_for_a_german_identity(
    identities: dict[str, SenderIdentity],
) -> None:
    values = system_mail.sample_values(Kind.REOPEN_NOTICE)
    rendered = system_mail.render(
        Kind.REOPEN_NOTICE, identities["de"], identities["de"].language, values
    )
    assert rendered.language == "de"
    assert rendered.subject.startswith("[#T-104233] Ihre Anfrage wurde wieder geöffnet")


@pytest.mark.parametrize("escape", ESCAPES)
def test_a_sandbox_escape_is_refused_at_save(
    identities: dict[str, SenderIdentity], escape: str
) -> None:
    for source in (
        Source("Hi", escape),
        Source(escape, "Hi"),
        Source("Hi", "Hi", f"<p>{escape}</p>"),
    ):
        with pytest.raises(TemplateRefused) as refused:
            system_mail.save_template(
                Actor.system(), identities["en"], Kind.AUTORESPONSE, "en", source
            )
        assert re.search(r"SecurityError|UndefinedError|unsafe", refused.value.message)
    db.session.rollback()
    assert db.session.query(SystemTemplate).count() == 0


@pytest.mark.parametrize("escape", ESCAPES)
def test_a_stored_escape_renders_the_default_never_the_escape(
    identities: dict[str, SenderIdentity], escape: str
) -> None:
    """Stored past the check (straight into the table): the default is sent instead."""
    db.session.add(
        SystemTemplate(
            identity_id=identities["en"].id,
            kind="autoresponse",
            language="en",
            subject="Hi",
            body_text=escape,
        )
    )
    db.session.flush()
    values = system_mail.sample_values(Kind.AUTORESPONSE)
    rendered = system_mail.render(Kind.AUTORESPONSE, identities["en"], "en", values)
    assert rendered.fell_back
    assert "<class" not in rendered.text and "uid=" not in rendered.text
    assert rendered.text.startswith("Hello Nora Customer,")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Hello {{ customer_name }", "TemplateSyntaxError"),
        ("{% if x %}never closed", "TemplateSyntaxError"),
        ("Hello {{ first_name }}", "'first_name' is undefined"),
        ("{{ code }}", "'code' is undefined"),  # a variable of another kind
    ],
)
def test_a_broken_template_is_refused_with_jinjas_reason(
    identities: dict[str, SenderIdentity], text: str, reason: str
) -> None:
    with pytest.raises(TemplateRefused) as refused:
        system_mail.save_template(
            Actor.system(), identities["en"], Kind.AUTORESPONSE, "en", Source("Hi", text)
        )
    assert reason in refused.value.message


def test_the_html_part_escapes_values_and_the_text_part_keeps_them(
    identities: dict[str, SenderIdentity],
) -> None:
    system_mail.save_template(
        Actor.system(),
        identities["en"],
        Kind.AUTORESPONSE,
        "en",
        Source(
            "Re {{ ticket_subject }}", "About {{ ticket_subject }}", "<p>{{ ticket_subject }}</p>"
        ),
    )
    values = {
        **system_mail.sample_values(Kind.AUTORESPONSE),
        "ticket_subject": "<img src=x onerror=alert(1)>",
    }
    rendered = system_mail.render(Kind.AUTORESPONSE, identities["en"], "en", values)
    assert rendered.html == "<p>&lt;img src=x onerror=alert(1)&gt;</p>"
    assert rendered.text == "About <img src=x onerror=alert(1)>\n"
    assert rendered.customised and not rendered.fell_back


def test_save_is_audited_and_reset_brings_the_default_back(
    identities: dict[str, SenderIdentity],
) -> None:
    identity = identities["de"]
    system_mail.save_template(
        Actor.system(), identity, Kind.SIGN_IN_LINK, "de", Source("Link", "{{ url }}")
    )
    db.session.commit()
    values = system_mail.sample_values(Kind.SIGN_IN_LINK)
    assert system_mail.render(Kind.SIGN_IN_LINK, identity, "de", values).subject == "Link"
    # Another identity and another language keep their defaults.
    assert system_mail.render(Kind.SIGN_IN_LINK, identities["en"], "de", values).subject == (
        "Ihr Anmeldelink"
    )
    assert system_mail.render(Kind.SIGN_IN_LINK, identity, "en", values).subject == (
        "Your sign-in link"
    )
    assert system_mail.reset_template(Actor.system(), identity, Kind.SIGN_IN_LINK, "de")
    db.session.commit()
    assert system_mail.render(Kind.SIGN_IN_LINK, identity, "de", values).subject == (
        "Ihr Anmeldelink"
    )
    actions = [a.action for a in db.session.query(AuditLog).order_by(AuditLog.id)]
    assert actions[-2:] == ["system_template.save", "system_template.reset"]


def test_portal_sign_in_mail_renders_through_the_default_identitys_template(
    app: Flask, smtp_sink: SmtpSink, make_user
) -> None:
    """An admin's sign-in template is what the customer receives, in their language."""
    use_smtp(app, smtp_sink)
    customer = make_user(Role.CUSTOMER, email="greta@kunde.test")
    with app.app_context():
        identity = save_identity(Actor.system(), address="support@desk.test", name="Desk")
        system_mail.save_template(
            Actor.system(),
            identity,
            Kind.SIGN_IN_LINK,
            "de",
            Source("Anmelden bei {{ identity_name }}", "Hallo {{ customer_name }}: {{ url }}"),
        )
        db.session.get(User, customer.id).language = "de"
        db.session.commit()
        emailed_links.deliver_sign_in_link("greta@kunde.test", None)
        db.session.commit()
    (received,) = smtp_sink.wait_for(1)
    assert received.message["Subject"] == "Anmelden bei Desk"
    body = received.message.get_content()
    assert re.match(r"Hallo \S+: http://\S+/portal/\S+", body), body


def test_portal_reset_mail_uses_german_defaults_for_a_german_customer(
    app: Flask, smtp_sink: SmtpSink, make_user
) -> None:
    use_smtp(app, smtp_sink)
    customer = make_user(Role.CUSTOMER, email="hans@kunde.test")
    with app.app_context():
        db.session.get(User, customer.id).language = "de"
        db.session.commit()
        emailed_links.deliver_password_reset("hans@kunde.test", None)
        db.session.commit()
    (received,) = smtp_sink.wait_for(1)
    assert received.message["Subject"] == "Passwort zurücksetzen"
    body = received.message.get_content()
    assert "Der Link funktioniert einmal, 60 Minuten lang." in body
    assert body.rstrip().endswith("-- \nVaultdesk")  # no identity yet: the product's name

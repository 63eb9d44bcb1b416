"""Admin screens for teams, sender identities and templates, categories, tags, settings."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import config as settings
from app.actor import Actor
from app.extensions import db
from app.mail import reply_templates
from app.mail.identities import add_template, save_identity
from app.models import AuditLog, OutboxMessage, Role, User
from app.models.mail import SenderIdentity
from app.models.people import Team
from app.models.tickets import Category, Tag, Ticket
from app.tickets import tags as tag_rules
from app.tickets.replies import answer
from tests import factories
from tests.conftest import Person, csrf_from, sign_in


@pytest.fixture
def admin(make_user: Any) -> Person:
    return make_user(Role.ADMIN)


@pytest.fixture
def client(app: Flask, admin: Person) -> FlaskClient:
    signed = app.test_client()
    assert sign_in(signed, admin).status_code == 302
    return signed


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None) -> Any:
    token = csrf_from(client.get("/admin/").get_data(as_text=True))
    return client.post(path, data={**(data or {}), "csrf_token": token})


def actions(app: Flask, prefix: str) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditLog).where(AuditLog.action.startswith(prefix)).order_by(AuditLog.id)
        )
        return [(r.action, r.actor_label) for r in rows]


# -- teams -----------------------------------------------------------------------------------


def test_teams_are_created_renamed_staffed_and_deleted(
    app: Flask, client: FlaskClient, admin: Person, make_user: Any
) -> None:
    lead, member, mover = (make_user(Role.AGENT) for _ in range(3))
    created = post(client, "/admin/teams", {"name": "First Level"})
    assert created.status_code == 303
    team_id = int(created.headers["Location"].rsplit("/", 1)[1])
    clash = post(client, "/admin/teams", {"name": "first level"})
    assert clash.status_code == 409 and "already" in clash.get_data(as_text=True)
    assert post(client, f"/admin/teams/{team_id}", {"name": "1st Level"}).status_code == 303
    saved = post(
        client,
        f"/admin/teams/{team_id}/members",
        {"members": [str(member.id), str(mover.id)], "leads": [str(lead.id)]},
    )
    assert saved.status_code == 303
    with app.app_context():
        team = db.session.get(Team, team_id)
        assert team.name == "1st Level"
        assert {m.id for m in team.members} == {lead.id, member.id, mover.id}
        assert db.session.get(User, lead.id).roles == {Role.AGENT, Role.SUPERVISOR}
        assert db.session.get(User, member.id).supervisor_id == lead.id
    page = client.get("/admin/teams").get_data(as_text=True)
    assert "1st Level" in page and "Agent" not in page.split("1st Level")[0][-5:]
    # The lead steps down: no supervisor role, nobody's supervisor any more.
    post(client, f"/admin/teams/{team_id}/members", {"members": [str(lead.id), str(member.id)]})
    with app.app_context():
        assert db.session.get(User, lead.id).roles == {Role.AGENT}
        assert db.session.get(User, member.id).supervisor_id is None
        assert db.session.get(User, mover.id).team_id is None
    assert post(client, f"/admin/teams/{team_id}/delete").status_code == 303
    with app.app_context():
        assert db.session.get(Team, team_id) is None
        assert db.session.get(User, member.id).team_id is None
    assert [a for a, _ in actions(app, "team.")] == [
        "team.create", "team.rename", "team.members", "team.members", "team.delete"
    ]  # fmt: skip
    assert {who for _, who in actions(app, "team.")} == {admin.email}


def test_only_staff_can_be_team_members(app: Flask, client: FlaskClient, make_user: Any) -> None:
    customer = make_user(Role.CUSTOMER)
    team_id = int(post(client, "/admin/teams", {"name": "T"}).headers["Location"].rsplit("/", 1)[1])
    refused = post(client, f"/admin/teams/{team_id}/members", {"members": [str(customer.id)]})
    assert refused.status_code == 422 and "Only staff" in refused.get_data(as_text=True)


# -- identities and templates -----------------------------------------------------------------


def _identities(app: Flask) -> tuple[int, int]:
    with app.app_context():
        system = Actor.system()
        main = save_identity(system, address="contact@desk.test", name="Desk", is_default=True)
        billing = save_identity(system, address="billing@desk.test", name="Billing")
        db.session.commit()
        return main.id, billing.id


def test_identities_are_edited_deactivated_and_deleted_keeping_sent_mail_readable(
    app: Flask, client: FlaskClient, make_user: Any
) -> None:
    main, billing = _identities(app)
    agent = make_user(Role.AGENT)
    with app.app_context():
        ticket = factories.ticket()
        number = ticket.number
        answer(
            ticket,
            Actor.staff(db.session.get(User, agent.id)),
            "Your invoice is corrected.",
            internal=False,
            identity=db.session.get(SenderIdentity, billing),
        )
        db.session.commit()
    edited = post(
        client,
        f"/admin/identities/{billing}",
        {"address": "invoices@desk.test", "name": "Invoices", "language": "de", "signature": "Bye"},
    )
    assert edited.status_code == 303
    refused = post(client, f"/admin/identities/{main}/deactivate")
    assert refused.status_code == 409 and "default identity" in refused.get_data(as_text=True)
    assert post(client, f"/admin/identities/{main}/delete").status_code == 409
    assert post(client, f"/admin/identities/{billing}/deactivate").status_code == 303
    with app.app_context():
        identity = db.session.get(SenderIdentity, billing)
        assert (identity.address, identity.language, identity.active) == (
            "invoices@desk.test", "de", False
        )  # fmt: skip
    # Agents are no longer offered it.
    agent_client = app.test_client()
    sign_in(agent_client, agent)
    assert "invoices@desk.test" not in agent_client.get(f"/agent/tickets/{number}").get_data(
        as_text=True
    )
    assert post(client, f"/admin/identities/{billing}/delete").status_code == 303
    with app.app_context():
        assert db.session.get(SenderIdentity, billing) is None
        sent = db.session.scalar(select(OutboxMessage))
        assert sent.identity_id is None and sent.from_address == "billing@desk.test"
    page = agent_client.get(f"/agent/tickets/{number}").get_data(as_text=True)
    assert "Your invoice is corrected." in page
    assert [a for a, _ in actions(app, "identity.")][-3:] == [
        "identity.save", "identity.deactivate", "identity.delete"
    ]  # fmt: skip


def test_templates_take_placeholders_checked_in_the_sandbox_with_a_preview(
    app: Flask, client: FlaskClient
) -> None:
    main, _billing = _identities(app)
    typo = post(
        client,
        f"/admin/identities/{main}/templates",
        {"name": "Hello", "body": "Hello {{ customer_nme }}"},
    )
    assert typo.status_code == 422 and "customer_nme" in typo.get_data(as_text=True)
    escape = post(
        client,
        f"/admin/identities/{main}/templates",
        {"name": "Evil", "body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
    )
    assert escape.status_code == 422 and "SecurityError" in escape.get_data(as_text=True)
    preview = client.post(
        "/admin/templates/preview",
        data={
            "body": "Hello {{ customer_name }}, about {{ ticket_number }}. {{ agent_name }}",
            "csrf_token": csrf_from(client.get("/admin/").get_data(as_text=True)),
        },
        headers={"HX-Request": "true"},
    )
    body = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Hello Nora Customer, about T-104233. Ada Agent" in body
    assert not body.lstrip().startswith("<!doctype")
    good = post(
        client,
        f"/admin/identities/{main}/templates",
        {"name": "Hello", "body": "Hello {{ customer_name }}, see {{ portal_url }}"},
    )
    assert good.status_code == 303
    with app.app_context():
        (template,) = db.session.get(SenderIdentity, main).templates
        template_id = template.id
    page = client.get(f"/admin/templates/{template_id}").get_data(as_text=True)
    assert "Hello Nora Customer, see https://desk.example/portal/t/T-104233" in page
    assert (
        post(
            client,
            f"/admin/templates/{template_id}",
            {"name": "Hi", "body": "Hi {{ customer_name }} ({{ ticket_number }})", "active": "on"},
        ).status_code
        == 303
    )
    assert post(client, f"/admin/templates/{template_id}/delete").status_code == 303
    assert [a for a, _ in actions(app, "template.")] == [
        "template.add", "template.save", "template.delete"
    ]  # fmt: skip


def test_the_composer_inserts_a_template_filled_in_for_the_ticket(
    app: Flask, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    with app.app_context():
        identity = save_identity(Actor.system(), address="contact@desk.test", name="Desk")
        add_template(
            Actor.system(),
            identity,
            "Hello",
            "Hello {{ customer_name }}, {{ ticket_number }} is with {{ agent_name }}.",
        )
        ticket = factories.ticket()
        number, customer, identity_id = ticket.number, ticket.contact.name, identity.id
        db.session.commit()
    client = app.test_client()
    sign_in(client, agent)
    expected = f"Hello {customer}, {number} is with {agent.email.split('@')[0].title()}."
    page = client.get(f"/agent/tickets/{number}").get_data(as_text=True)
    assert f'data-body="{expected}"' in page
    swapped = client.get(
        f"/agent/identities/templates?identity_id={identity_id}&number={number}",
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert f'data-body="{expected}"' in swapped


def test_reply_template_values_never_reach_models() -> None:
    with pytest.raises(reply_templates.TemplateRefused):
        reply_templates.check("{{ ticket.contact }}")
    assert reply_templates.render("{{ customer_name }}", {"customer_name": "A", "x": "y"}) == "A"


# -- categories and tags ----------------------------------------------------------------------


def test_categories_are_created_renamed_retired_and_merged(
    app: Flask, client: FlaskClient, admin: Person, make_user: Any
) -> None:
    assert post(client, "/admin/categories", {"name": "Billing"}).status_code == 303
    assert post(client, "/admin/categories", {"name": "Invoices"}).status_code == 303
    assert post(client, "/admin/categories", {"name": "billing"}).status_code == 409
    with app.app_context():
        billing = db.session.scalar(select(Category).where(Category.name == "Billing"))
        invoices = db.session.scalar(select(Category).where(Category.name == "Invoices"))
        old = factories.ticket("Old", category=invoices)
        numbers = [old.number, factories.ticket("Older", category=invoices).number]
        billing_id, invoices_id = billing.id, invoices.id
        db.session.commit()
    assert (
        post(client, f"/admin/categories/{billing_id}", {"name": "Billing & invoices"}).status_code
        == 303
    )
    assert post(client, f"/admin/categories/{invoices_id}/retire").status_code == 303
    # Retired: the portal no longer offers it, the ticket keeps it.
    with app.app_context():
        from app.tickets.portal import active_categories

        assert [c.name for c in active_categories()] == ["Billing & invoices"]
        assert (
            db.session.scalar(select(Ticket).where(Ticket.number == numbers[0])).category_id
            == invoices_id
        )
    # The agent's ticket page still shows (and keeps) the retired category.
    agent_client = app.test_client()
    sign_in(agent_client, make_user(Role.AGENT))
    ticket_page = agent_client.get(f"/agent/tickets/{numbers[0]}").get_data(as_text=True)
    assert f'<option value="{invoices_id}" selected>Invoices</option>' in ticket_page
    merged = post(client, f"/admin/categories/{invoices_id}/merge", {"into": str(billing_id)})
    assert merged.status_code == 303
    assert "2 tickets moved" in client.get("/admin/categories").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Category, invoices_id) is None
        for number in numbers:
            ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket.category_id == billing_id and ticket.version > 1
    assert (
        post(client, f"/admin/categories/{billing_id}/merge", {"into": str(billing_id)}).status_code
        == 422
    )
    assert [a for a, _ in actions(app, "category.")] == [
        "category.create", "category.create", "category.rename", "category.retire", "category.merge"
    ]  # fmt: skip


def test_tags_are_renamed_merged_and_deleted_across_tickets(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        one, two, three = (factories.ticket(f"T{i}") for i in range(3))
        tag_rules.apply_tags(one, ["vpn", "urgent-ish"])
        tag_rules.apply_tags(two, ["VPN access"])
        tag_rules.apply_tags(three, ["vpn", "vpn access"])
        db.session.flush()
        ids = {t.name: t.id for t in db.session.scalars(select(Tag))}
        numbers = [one.number, two.number, three.number]
        db.session.commit()
    page = client.get("/admin/tags").get_data(as_text=True)
    assert "vpn access" in page
    clash = post(client, f"/admin/tags/{ids['vpn access']}", {"name": " VPN "})
    assert clash.status_code == 409 and "Merge the two instead" in clash.get_data(as_text=True)
    assert post(client, f"/admin/tags/{ids['urgent-ish']}", {"name": "Soon"}).status_code == 303
    merged = post(client, f"/admin/tags/{ids['vpn access']}/merge", {"into": str(ids["vpn"])})
    assert merged.status_code == 303
    with app.app_context():
        tags = {
            n: sorted(
                t.name for t in db.session.scalar(select(Ticket).where(Ticket.number == n)).tags
            )
            for n in numbers
        }
    assert tags == {numbers[0]: ["soon", "vpn"], numbers[1]: ["vpn"], numbers[2]: ["vpn"]}
    assert post(client, f"/admin/tags/{ids['vpn']}/delete").status_code == 303
    with app.app_context():
        assert {t.name for t in db.session.scalars(select(Tag))} == {"soon"}
    searched = client.get("/admin/tags?q=so", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "soon" in searched and not searched.lstrip().startswith("<!doctype")
    assert [a for a, _ in actions(app, "tag.")] == ["tag.rename", "tag.merge", "tag.delete"]


# -- settings --------------------------------------------------------------------------------


def test_settings_show_values_and_origins_and_hide_secrets(app: Flask, client: FlaskClient) -> None:
    app.config["SMTP_URL"] = "smtp://mailer:hunter2secret@mail.example:587"
    page = client.get("/admin/settings").get_data(as_text=True)
    assert "test-secret-key-not-for-production" not in page
    assert "hunter2secret" not in page and "mailer" not in page
    row = page.split('data-setting="SECRET_KEY"')[1].split("</tr>")[0]
    assert ">set<" in row and "set by the program starting the desk" in row
    row = page.split('data-setting="TICKET_PREFIX"')[1].split("</tr>")[0]
    assert "<code>T</code>" in row and ">default<" in row
    assert app.config["SETTING_ORIGINS"]["REDIS_URL"] == "create_app"


def test_origins_follow_the_layers(tmp_path: Any) -> None:
    config_file = tmp_path / "config.py"
    config_file.write_text('TICKET_PREFIX = "HD"\nLINK_DAYS = 7\n')
    found = settings.origins(
        {"LINK_DAYS": 3}, config_file, environ={"VAULTDESK_TIMEZONE": "Europe/Vienna"}
    )
    assert found["TICKET_PREFIX"] == "instance/config.py"
    assert found["LINK_DAYS"] == "create_app"
    assert found["TIMEZONE"] == "environment"
    assert found["MAIL_BATCH"] == "default"


@pytest.mark.parametrize(
    ("key", "value", "secret"),
    [
        ("SECRET_KEY", "x", True),
        ("VAULT_KEYS", "a:b", True),
        ("DEMO_PASSWORD", "x", True),
        ("DATABASE_URL", "postgresql://u:pw@db/x", True),
        ("DATABASE_URL", "postgresql://u@db/x", False),
        ("REDIS_URL", "redis://:pw@127.0.0.1:6379/0", True),
        ("TICKET_PREFIX", "T", False),
    ],
)
def test_what_counts_as_a_secret(key: str, value: str, secret: bool) -> None:
    assert settings.is_secret(key, value) is secret

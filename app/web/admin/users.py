"""Admin screens for people: staff and customer logins listed apart, invitations, roles,
team, deactivation, password resets; and the open page where an invited colleague
chooses a password. Thin: the rules are in ``app.accounts.admin_users``,
``app.accounts.teams`` and ``app.accounts.staff_links``.
"""

from __future__ import annotations

from flask import flash, make_response, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user
from werkzeug.wrappers import Response

from app.accounts import admin_users, emailed_links, staff_links
from app.accounts.admin_users import UserKind
from app.accounts.emailed_links import EmailedLinkRefused, SetPasswordKind
from app.accounts.people import MIN_PASSWORD
from app.errors import DomainError
from app.extensions import db
from app.htmx import go_to, render
from app.models.people import Role, Team, User
from app.params import int_id, page_number
from app.web.admin import bp
from app.web.admin.common import actor, get_or_404
from app.web.guards import home_for

STAFF_ROLE_ORDER = [Role.AGENT, Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN]


def _teams() -> list[Team]:
    from app.accounts.teams import list_teams

    return list_teams()


def _kind(value: str | None) -> UserKind:
    return UserKind.CUSTOMERS if value == UserKind.CUSTOMERS.value else UserKind.STAFF


@bp.get("/users")
def users() -> Response:
    """Staff or customer logins (``kind``), searched by name or address, in pages."""
    kind = _kind(request.args.get("kind"))
    search = (request.args.get("q") or "").strip()[:100]
    listed = admin_users.list_users(kind, search, page_number(request.args.get("page")))
    return render("admin/users.html", "user_list", kind=kind, q=search, listed=listed)


def _user(user_id: int) -> User:
    return get_or_404(User, user_id, _("There is no such user."))


def _new_page(
    kind: str, form: dict[str, object], error: str | None = None, status: int = 200
) -> Response:
    return render(
        "admin/user_new.html",
        None,
        status,
        kind=kind,
        form=form,
        error=error,
        roles=STAFF_ROLE_ORDER,
        teams=_teams(),
    )


@bp.get("/users/new")
def new_user() -> Response:
    kind = "customer" if request.args.get("kind") == "customer" else "staff"
    return _new_page(kind, {"roles": [Role.AGENT.value]})


@bp.post("/users/new")
def create_user_view() -> Response:
    data = request.form
    kind = "customer" if data.get("kind") == "customer" else "staff"
    form = {
        "email": data.get("email", ""),
        "name": data.get("name", ""),
        "account": data.get("account", ""),
        "roles": data.getlist("roles"),
        "team_id": data.get("team_id", ""),
    }
    try:
        if kind == "staff":
            roles = admin_users.parse_staff_roles(data.getlist("roles"))
            team_id = int_id(data.get("team_id"), _("team"))
            team = get_or_404(Team, team_id, _("There is no such team.")) if team_id else None
            user = admin_users.invite_staff(
                actor(),
                email=form["email"],
                name=form["name"],
                roles=roles,
                team=team,  # type: ignore[arg-type]
            )
        else:
            user = admin_users.invite_customer(
                actor(),
                email=form["email"],
                name=form["name"],
                account_name=form["account"],  # type: ignore[arg-type]
            )
    except DomainError as error:
        db.session.rollback()
        return _new_page(kind, form, error.message, error.status)
    db.session.commit()
    flash(
        _(
            "%(name)s is invited: the mail to %(email)s is on its way.",
            name=user.name,
            email=user.email,
        ),
        "success",
    )
    return go_to(url_for("admin.user", user_id=user.id))


def _user_page(user: User, error: str | None = None, status: int = 200) -> Response:
    return render(
        "admin/user.html",
        None,
        status,
        user=user,
        error=error,
        roles=STAFF_ROLE_ORDER,
        teams=_teams(),
        is_self=user.id == current_user.id,
    )


@bp.get("/users/<int:user_id>")
def user(user_id: int) -> Response:
    return _user_page(_user(user_id))


def _act(user_id: int, change, done: str) -> Response:  # type: ignore[no-untyped-def]
    """Run ``change(user)``; a refusal shows the user's page with the reason in place."""
    person = _user(user_id)
    try:
        changed = change(person)
    except DomainError as error:
        db.session.rollback()
        return _user_page(_user(user_id), error.message, error.status)
    db.session.commit()
    if changed is not False:
        flash(done % {"name": person.name, "email": person.email}, "success")
    return go_to(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/roles")
def set_roles(user_id: int) -> Response:
    return _act(
        user_id,
        lambda u: admin_users.set_roles(
            actor(), u, admin_users.parse_staff_roles(request.form.getlist("roles"))
        ),
        _("The roles of %(name)s are saved."),
    )


@bp.post("/users/<int:user_id>/team")
def set_team(user_id: int) -> Response:
    def change(person: User) -> bool:
        team_id = int_id(request.form.get("team_id"), _("team"))
        team = get_or_404(Team, team_id, _("There is no such team.")) if team_id else None
        return admin_users.set_team(actor(), person, team)

    return _act(user_id, change, _("The team of %(name)s is saved."))


@bp.post("/users/<int:user_id>/deactivate")
def deactivate(user_id: int) -> Response:
    return _act(
        user_id,
        lambda u: admin_users.deactivate(actor(), u),
        _("%(name)s is deactivated and signed out everywhere."),
    )


@bp.post("/users/<int:user_id>/reactivate")
def reactivate(user_id: int) -> Response:
    return _act(
        user_id,
        lambda u: admin_users.reactivate(actor(), u),
        _("%(name)s can sign in again."),
    )


@bp.post("/users/<int:user_id>/password-reset")
def password_reset(user_id: int) -> Response:
    return _act(
        user_id,
        lambda u: admin_users.send_password_reset(actor(), u, request.remote_addr),
        _("A link to choose a new password is on its way to %(email)s."),
    )


@bp.post("/users/<int:user_id>/invite")
def resend_invitation(user_id: int) -> Response:
    return _act(
        user_id,
        lambda u: admin_users.resend_invitation(actor(), u),
        _("The invitation to %(email)s is on its way again."),
    )


# -- the open page behind the emailed link ---------------------------------------------------

# Roles whose sign-in goes through the sign-in page's second factor (issue 11, point 5):
# for them, choosing a password does not start a session; they sign in at /login.
SIGN_IN_AT_THE_DOOR = frozenset({Role.ADMIN, Role.COMPLIANCE})


def _signed_in(person: User, kind: SetPasswordKind) -> Response:
    """After the password is set: an invited agent or supervisor is signed in and lands at
    home. Everyone else signs in at /login, where a second factor is asked: admins and
    compliance officers (required for them), and anyone who chose a new password from a
    reset link (they may have enrolled a second factor, which a link must not bypass)."""
    if kind is not SetPasswordKind.INVITE or person.roles & SIGN_IN_AT_THE_DOOR:
        db.session.commit()
        session.clear()
        flash(_("Your password is set. Sign in with it."), "success")
        return redirect(url_for("auth.login"), code=303)
    from app.accounts.signin import record_login

    record_login(person, request.remote_addr, audience="staff", method="emailed link")
    db.session.commit()
    session.clear()  # no session fixation, and nobody else's session goes on
    login_user(person)
    flash(_("Welcome, %(name)s. Your password is set.", name=person.name), "success")
    return redirect(home_for(person), code=303)


@bp.route("/welcome/<token>", methods=["GET", "POST"])
def welcome(token: str) -> Response:
    """Choose a password from a staff invitation or reset link, and be signed in.

    The GET only shows the form (mail scanners fetch links); the POST spends the link.
    Whoever is signed in in this browser is signed out first: the link is for its owner.
    """
    error: str | None = None
    status = 200
    try:
        link = staff_links.check_link(token)
        if request.method == "POST":
            try:
                person = staff_links.set_password(
                    token,
                    request.form.get("password", ""),
                    request.form.get("repeat", ""),
                    request.remote_addr,
                )
            except EmailedLinkRefused:
                raise
            except DomainError as refused:
                db.session.rollback()
                error, status = refused.message, refused.status
            else:
                return _signed_in(person, link.kind)
    except EmailedLinkRefused as refused:
        if request.method == "POST":
            emailed_links.record_refusal(staff_links.STAFF_SALT, refused, request.remote_addr)
            db.session.commit()
        response = render("admin/welcome.html", None, refused.status, link=None, refused=refused)
        response.headers["Cache-Control"] = "no-store"
        return response
    response = make_response(
        render(
            "admin/welcome.html",
            None,
            status,
            link=link,
            refused=None,
            error=error,
            min_length=MIN_PASSWORD,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response

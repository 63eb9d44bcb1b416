"""Admin screens for categories (create, rename, retire, merge) and tags (rename, merge,
delete across tickets). Thin: the rules are in ``app.tickets.categories`` and
``app.tickets.tags``.
"""

from __future__ import annotations

from flask import flash, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from app.errors import DomainError
from app.extensions import db
from app.htmx import go_to, render
from app.models.tickets import Category, Tag
from app.params import int_id
from app.tickets import categories as category_rules
from app.tickets import tags as tag_rules
from app.web.admin import bp
from app.web.admin.common import actor, get_or_404


def _category(category_id: int | None) -> Category:
    return get_or_404(Category, category_id or 0, _("There is no such category."))


def _categories_page(error: str | None = None, status: int = 200, name: str = "") -> Response:
    return render(
        "admin/categories.html",
        None,
        status,
        rows=category_rules.list_categories(),
        error=error,
        name=name,
    )


@bp.get("/categories")
def categories() -> Response:
    return _categories_page()


def _do(change, done: str, name: str = "") -> Response:  # type: ignore[no-untyped-def]
    try:
        result = change()
    except DomainError as error:
        db.session.rollback()
        return _categories_page(error.message, error.status, name)
    db.session.commit()
    flash(done % result, "success")
    return go_to(url_for("admin.categories"))


@bp.post("/categories")
def create_category() -> Response:
    name = request.form.get("name", "")

    def change() -> dict[str, object]:
        return {"name": category_rules.create_category(actor(), name).name}

    return _do(change, _("Category %(name)s created."), name)


@bp.post("/categories/<int:category_id>")
def rename_category(category_id: int) -> Response:
    def change() -> dict[str, object]:
        category = _category(category_id)
        category_rules.rename_category(actor(), category, request.form.get("name", ""))
        return {"name": category.name}

    return _do(change, _("Category %(name)s saved."))


@bp.post("/categories/<int:category_id>/retire")
def retire_category(category_id: int) -> Response:
    def change() -> dict[str, object]:
        category = _category(category_id)
        category_rules.set_active(actor(), category, False)
        return {"name": category.name}

    return _do(change, _("%(name)s is retired: no longer offered; its tickets keep it."))


@bp.post("/categories/<int:category_id>/restore")
def restore_category(category_id: int) -> Response:
    def change() -> dict[str, object]:
        category = _category(category_id)
        category_rules.set_active(actor(), category, True)
        return {"name": category.name}

    return _do(change, _("%(name)s is offered again."))


@bp.post("/categories/<int:category_id>/merge")
def merge_category(category_id: int) -> Response:
    def change() -> dict[str, object]:
        source = _category(category_id)
        target = _category(int_id(request.form.get("into"), _("category")))
        name = source.name
        moved = category_rules.merge_categories(actor(), source, target)
        return {"name": name, "into": target.name, "count": moved}

    return _do(change, _("%(name)s is merged into %(into)s (%(count)s tickets moved)."))


# -- tags ------------------------------------------------------------------------------------


def _tag(tag_id: int | None) -> Tag:
    return get_or_404(Tag, tag_id or 0, _("There is no such tag."))


def _tags_page(error: str | None = None, status: int = 200) -> Response:
    search = (request.args.get("q") or "").strip()[:60]
    return render(
        "admin/tags.html",
        "tag_list",
        status,
        rows=tag_rules.list_tags(search),
        all_tags=tag_rules.list_tags() if not search else None,
        q=search,
        error=error,
    )


@bp.get("/tags")
def tags() -> Response:
    return _tags_page()


def _tag_do(change, done: str) -> Response:  # type: ignore[no-untyped-def]
    try:
        result = change()
    except DomainError as error:
        db.session.rollback()
        return _tags_page(error.message, error.status)
    db.session.commit()
    flash(done % result, "success")
    return go_to(url_for("admin.tags"))


@bp.post("/tags/<int:tag_id>")
def rename_tag(tag_id: int) -> Response:
    def change() -> dict[str, object]:
        tag = _tag(tag_id)
        before = tag.name
        tag_rules.rename_tag(actor(), tag, request.form.get("name", ""))
        return {"name": before, "new": tag.name}

    return _tag_do(change, _("Tag %(name)s is now %(new)s."))


@bp.post("/tags/<int:tag_id>/merge")
def merge_tag(tag_id: int) -> Response:
    def change() -> dict[str, object]:
        source = _tag(tag_id)
        target = _tag(int_id(request.form.get("into"), _("tag")))
        name, into = source.name, target.name
        count = tag_rules.merge_tags(actor(), source, target)
        return {"name": name, "into": into, "count": count}

    return _tag_do(change, _("Tag %(name)s is merged into %(into)s (%(count)s tickets)."))


@bp.post("/tags/<int:tag_id>/delete")
def delete_tag(tag_id: int) -> Response:
    def change() -> dict[str, object]:
        tag = _tag(tag_id)
        name = tag.name
        count = tag_rules.delete_tag(actor(), tag)
        return {"name": name, "count": count}

    return _tag_do(change, _("Tag %(name)s is deleted (taken off %(count)s tickets)."))

"""Interface language: English and German catalogs through Flask-Babel.

The language is, in order: the signed-in user's own setting, the one chosen on a sign-in
page (kept in the session), the browser's Accept-Language, English.
"""

from __future__ import annotations

from flask import Flask, request, session
from flask_babel import Babel, get_locale
from flask_login import current_user

LANGUAGES = {"en": "English", "de": "Deutsch"}
babel = Babel()


def select_locale() -> str:
    if current_user and current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def init_app(app: Flask) -> None:
    babel.init_app(
        app, locale_selector=select_locale, default_translation_directories="translations"
    )
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, get_locale=get_locale)

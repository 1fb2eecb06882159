"""Forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import InputRequired, Length

from .auth import MAX_PASSWORD


class LoginForm(FlaskForm):
    """User name and password; ``next`` is re-validated by the view."""

    username = StringField(
        "User name", validators=[InputRequired(), Length(max=64)], render_kw={"autocomplete": "username"}
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired(), Length(max=MAX_PASSWORD)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class LogoutForm(FlaskForm):
    """Only the CSRF token."""

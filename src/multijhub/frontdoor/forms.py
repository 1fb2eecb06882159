"""Forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import AnyOf, InputRequired, Length

from .auth import MAX_PASSWORD


class LoginForm(FlaskForm):
    """User name and password; ``next`` is re-validated by the view."""

    # Phones must not capitalise or "correct" the name (the view lower-cases it anyway, as the hubs do).
    username = StringField(
        "User name",
        validators=[InputRequired(), Length(max=64)],
        render_kw={
            "autocomplete": "username",
            "autocapitalize": "none",
            "autocorrect": "off",
            "spellcheck": "false",
        },
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired(), Length(max=MAX_PASSWORD)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class LogoutForm(FlaskForm):
    """Only the CSRF token."""


class DrainForm(FlaskForm):
    """Drain or undrain one node (the view checks the node name against the configuration)."""

    node = HiddenField(validators=[InputRequired(), Length(max=64)])
    action = HiddenField(validators=[InputRequired(), AnyOf(["drain", "undrain"])])


class GoForm(FlaskForm):
    """Pick one of several nodes that run the user's server."""

    node = HiddenField(validators=[InputRequired(), Length(max=64)])
    next = HiddenField()

"""The admin forms. Flask-WTF puts a CSRF token in each; `auth.check_csrf` verifies it on every POST."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, RadioField, SelectMultipleField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from hashtale.db.reviews import USERNAME_MAX, Closeness
from hashtale.webhook.integers import parse_int

NOTE_MAX = 4000  # characters
TAGS_FIELD_MAX = 2000  # characters
YES_NO = [SelectChoice("yes", "Yes"), SelectChoice("no", "No")]


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[InputRequired(), Length(max=USERNAME_MAX)])
    password = PasswordField("Password", validators=[InputRequired()])
    submit = SubmitField("Log in")


class LogoutForm(FlaskForm):
    submit = SubmitField("Log out")


class ReviewForm(FlaskForm):
    """Choices of `relevant` (the suggested hashtags' ranks) are set per post by the view."""

    relevant = SelectMultipleField("Relevant hashtags", coerce=parse_int, widget=ListWidget(prefix_label=False),
                                   option_widget=CheckboxInput(), validators=[Optional()])
    tags = StringField("Other hashtags for training (the ticked ones are included)", validators=[Optional(), Length(max=TAGS_FIELD_MAX)])
    hashtag_relevant = RadioField("Is the hashtag relevant to the image?", choices=YES_NO, validators=[InputRequired()])
    story_meaningful = RadioField("Does the story have a meaningful context?", choices=YES_NO, validators=[Optional()])
    story_closeness = RadioField("How close is the story's context to the image's?", validators=[Optional()],
                                 choices=[SelectChoice(c.value, c.value.capitalize()) for c in Closeness])
    note = TextAreaField("Note", validators=[Optional(), Length(max=NOTE_MAX)])
    base_review_id = HiddenField()
    save = SubmitField("Save review")
    approve = SubmitField("Approve")
    reject = SubmitField("Reject")

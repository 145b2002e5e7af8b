"""A guest's name can say who they are, and nothing else: it cannot pose as a member or a link."""

from __future__ import annotations

import pytest

from bridge.join.tokens import MAX_DISPLAY_NAME, InvalidDisplayName, clean_display_name


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("Zoé Martin", "Zoé Martin"),
        ("  Zoé   Martin ", "Zoé Martin"),
        ("\uff3a\uff4f\u00e9 Martin", "Zoé Martin"),  # fullwidth letters fold to ASCII
        ("Zoe\u0301 Martin", "Zoé Martin"),  # a decomposed accent is composed
        ("J. Martin", "J. Martin"),
        ("Jean-Pierre O'Neil", "Jean-Pierre O'Neil"),
        ("Zoé\u00a0Martin", "Zoé Martin"),  # a no-break space is a space
    ],
)
def test_ordinary_names_pass_normalised(typed: str, shown: str) -> None:
    assert clean_display_name(typed) == shown


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "@alice:agent.tchap.gouv.fr",  # another person's Matrix id
        "\uff20alice\uff1aagent.tchap.gouv.fr",  # the same in fullwidth look-alikes
        "Alice, Bob, Charlie",  # extra names in a participant list
        "https://evil.example/login",
        "www.evil.example",
        "mairie-paris.fr.evil.com",
        "Zoé\u2028Votre mot de passe a expiré",  # line separator
        "Zoé\u2029Nouveau paragraphe",  # paragraph separator
        "Zoé\nMartin",
        "Zoé\u202eniarM",  # right-to-left override
        "Zoé\u200bMartin",  # zero-width space
        "Z" + "\u0301" * 20 + "oé",  # a flood of combining marks
        "<b>Zoé</b>",
        "x" * (MAX_DISPLAY_NAME + 1),
    ],
)
def test_names_that_pose_as_something_else_are_refused(typed: str) -> None:
    with pytest.raises(InvalidDisplayName):
        clean_display_name(typed)

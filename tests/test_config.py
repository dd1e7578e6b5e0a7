"""The ``essays_*`` configuration values are checked before anything is read."""

from __future__ import annotations

import pytest
from sphinx.errors import ConfigError

from sphinx_essays.config import EssaysConfig


def test_defaults_are_valid() -> None:
    EssaysConfig().validate()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"topics": ()}, "essays_topics must name at least one topic"),
        ({"topics": ("Observability",)}, "'Observability' is not a lowercase slug"),
        ({"topics": ("teams", "teams")}, "lists a topic twice"),
        ({"root": "../essays"}, "essays_root must be a folder relative"),
        ({"words_per_minute": 0}, "essays_words_per_minute must be a positive"),
    ],
)
def test_bad_settings_name_the_value(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        EssaysConfig(**settings).validate()  # type: ignore[arg-type]


def test_bad_conf_py_stops_the_build(make_app, rootdir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    shutil.copytree(rootdir / "test-essays-valid", tmp_path / "src")
    with pytest.raises(ConfigError, match="'Bad Topic' is not a lowercase slug"):
        make_app(
            "html",
            srcdir=tmp_path / "src",
            confoverrides={"essays_topics": ["Bad Topic"]},
        )

"""Label descriptions (`serve --label-info`): the JD defaults, the CSV file, and its errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from fashionstyle import FashionStyleError
from fashionstyle.serving.label_info import JD_DESCRIPTIONS, label_descriptions
from fashionstyle.data.labels.names import JD_STYLES

OWN = ["Red", "Striped", "Dotted"]


def info(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "label_info.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_jd_styles_are_described_by_default_and_other_labels_are_not() -> None:
    described = label_descriptions(list(JD_STYLES))
    assert list(described) == list(JD_STYLES) and all(described.values())
    assert "office" in described["OL"] and "girlish" in described["Miden"] and "ethnic" in described["Nation"]
    assert label_descriptions(["ol", "Miden"]) == {"ol": JD_DESCRIPTIONS["OL"], "Miden": JD_DESCRIPTIONS["Miden"]}
    assert label_descriptions(OWN) == {}


def test_a_file_describes_labels_by_any_spelling_and_replaces_defaults(tmp_path) -> None:
    path = info(tmp_path, 'Label,Description\nred,"warm colours, mostly red"\nDotted,polka dots\n')
    assert label_descriptions(OWN, path) == {"Red": "warm colours, mostly red", "Dotted": "polka dots"}
    path = info(tmp_path, "label,description\n少女,youthful\nNation,\n")  # Chinese name; empty: no description
    described = label_descriptions(list(JD_STYLES), path)
    assert described["Miden"] == "youthful" and "Nation" not in described and described["OL"] == JD_DESCRIPTIONS["OL"]


def test_unknown_labels_are_one_error_naming_them_and_the_valid_ones(tmp_path) -> None:
    path = info(tmp_path, "label,description\nRed,r\nStripy,s\nBlue,b\n")
    with pytest.raises(FashionStyleError) as err:
        label_descriptions(OWN, path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "'Stripy'" in message and "'Blue'" in message and "valid: Red, Striped, Dotted" in message
    with pytest.raises(FashionStyleError, match="did you mean Striped"):
        label_descriptions(OWN, info(tmp_path, "label,description\nStripy,s\n"))


@pytest.mark.parametrize("text, expected", [
    ("name,text\nRed,r\n", r":1: the header must be label,description, got name,text"),
    ("label,description\nRed,r,extra\n", r":2: expected 2 fields .* got 3; quote a description"),
    ("label,description\nRed,r\n\nred,again\n", r":4: label Red described twice \(first on line 2\)"),
    ("", "empty label-info file"),
])
def test_malformed_files_name_the_line_and_the_problem(tmp_path, text, expected) -> None:
    with pytest.raises(FashionStyleError, match=expected):
        label_descriptions(OWN, info(tmp_path, text))


def test_missing_file_is_a_user_error(tmp_path) -> None:
    with pytest.raises(FashionStyleError, match="label-info file not found"):
        label_descriptions(OWN, tmp_path / "nope.csv")

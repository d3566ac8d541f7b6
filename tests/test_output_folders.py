"""Commands that write folders write only into their own: a user's files and other commands' outputs are
refused in one line, before anything is written; a command's own folder is reused."""
from __future__ import annotations

from pathlib import Path

import pytest

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.output_folder import MARKER, claim_folder, folder_owner


def test_a_new_folder_is_made_and_marked_with_its_command(tmp_path: Path) -> None:
    out = claim_folder(tmp_path / "maps", "explain")
    assert out.is_dir() and folder_owner(out) == "explain"
    (out / "index.html").write_text("first page")
    assert claim_folder(out, "explain") == out  # its own folder: taken back


def test_a_users_folder_with_files_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    mine = tmp_path / "site"
    mine.mkdir()
    (mine / "index.html").write_text("my own page")
    with pytest.raises(FashionStyleError, match="holds files fashionstyle did not write; choose an empty or new"):
        claim_folder(mine, "explain")
    assert sorted(p.name for p in mine.iterdir()) == ["index.html"]
    assert (mine / "index.html").read_text() == "my own page"


def test_another_commands_output_is_refused_by_name(tmp_path: Path) -> None:
    report = claim_folder(tmp_path / "report", "report")
    (report / "index.html").write_text("the report")
    with pytest.raises(FashionStyleError, match="holds the output of `fashionstyle report`"):
        claim_folder(report, "explain")
    assert (report / "index.html").read_text() == "the report"


def test_an_empty_folder_and_a_file_in_the_way(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (claim_folder(empty, "explain") / MARKER).is_file()
    a_file = tmp_path / "out.txt"
    a_file.write_text("x")
    with pytest.raises(FashionStyleError, match="is a file; --out of explain is a folder"):
        claim_folder(a_file, "explain")


def test_a_killed_loader_worker_ends_in_one_line_with_the_resume_command(monkeypatch, capsys) -> None:
    from fashionstyle import cli

    def killed(args) -> int:
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. \nmore detail")

    monkeypatch.setitem(cli.COMMANDS, "predict", cli.COMMANDS["predict"]._replace(run=killed))
    assert cli.main(["predict", "runs/x", "--images", "photos/", "--out", "tags.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "a data-loading worker was killed" in err
    assert err.endswith("continue with: fashionstyle predict runs/x --images photos/ --out tags.csv --resume")

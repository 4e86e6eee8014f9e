"""Settings checks the JSON schema cannot express: output paths are checked before a run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from target_meta_capi.settings import settings_errors
from target_meta_capi.settings.config_files import ConfigFileError, read_config_files
from target_meta_capi.settings.output_paths import unwritable_path_problem

BASE = {"pixel_id": "1", "access_token": "token"}


def _deny_writing(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Permission bits stop no root process (the tests may run as root): os.access says no
    for `denied` as it would to a user without write permission there."""
    access = os.access

    def access_without_writing(path: str | os.PathLike[str], mode: int, **kwargs: Any) -> bool:
        if Path(path) == denied and mode & os.W_OK:
            return False
        return access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access_without_writing)


def test_a_file_in_directories_still_to_be_created_is_writable(tmp_path: Path) -> None:
    assert unwritable_path_problem(tmp_path / "a" / "b" / "dead.jsonl") is None
    assert not (tmp_path / "a").exists()  # checking creates nothing


def test_a_directory_is_not_a_file_to_write(tmp_path: Path) -> None:
    assert unwritable_path_problem(tmp_path) == "is a directory"


def test_a_path_under_a_plain_file_cannot_be_created(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    assert unwritable_path_problem(plain / "x" / "dead.jsonl") == f"{plain} is not a directory"


def test_a_file_without_write_permission_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    letters = tmp_path / "dead.jsonl"
    letters.write_text("")
    _deny_writing(monkeypatch, letters)
    assert settings_errors({**BASE, "dead_letter_path": str(letters)}) == [
        f"dead_letter_path {str(letters)!r}: is not writable"
    ]


def test_a_directory_without_write_permission_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny_writing(monkeypatch, tmp_path)
    letters = tmp_path / "new" / "dead.jsonl"
    assert settings_errors({**BASE, "dead_letter_path": str(letters)}) == [
        f"dead_letter_path {str(letters)!r}: cannot create files in {tmp_path}"
    ]


def test_the_dry_run_path_is_only_checked_for_a_dry_run(tmp_path: Path) -> None:
    config = {**BASE, "dry_run_path": str(tmp_path), "dead_letter_path": str(tmp_path / "d")}
    assert settings_errors(config) == []
    assert settings_errors({**config, "dry_run": True}) == [
        f"dry_run_path {str(tmp_path)!r}: is a directory"
    ]


def test_a_symlink_loop_is_refused_before_the_run(tmp_path: Path) -> None:
    loop = tmp_path / "summary.json"
    loop.symlink_to(loop)
    assert settings_errors({**BASE, "summary_path": str(loop)}) == [
        f"summary_path {str(loop)!r}: cannot be reached (Too many levels of symbolic links)"
    ]


def test_a_summary_path_is_checked_where_its_symlink_leads(tmp_path: Path) -> None:
    # the summary is written beside the file the link points to, and renamed over it
    plain = tmp_path / "plain"
    plain.write_text("")
    link = tmp_path / "summary.json"
    link.symlink_to(plain / "summary.json")
    assert settings_errors({**BASE, "summary_path": str(link)}) == [
        f"summary_path {str(link)!r}: {plain.resolve()} is not a directory"
    ]


def test_a_path_with_a_nul_character_is_refused_not_a_traceback(tmp_path: Path) -> None:
    path = f"{tmp_path}/dead\0letters.jsonl"
    assert settings_errors({**BASE, "dead_letter_path": path}) == [
        f"dead_letter_path {path!r}: contains a NUL character, which no file name can"
    ]


def test_the_summary_may_not_replace_the_dead_letter_file(tmp_path: Path) -> None:
    shared = str(tmp_path / "out.jsonl")
    assert settings_errors({**BASE, "dead_letter_path": shared, "summary_path": shared}) == [
        f"summary_path {shared!r}: is the file dead_letter_path writes too: give each its own file"
    ]


def test_a_dry_run_may_not_write_its_payloads_into_the_dead_letter_file(tmp_path: Path) -> None:
    # the same file under another name: the payloads truncate it when the dry run starts
    dead_letters = tmp_path / "dead.jsonl"
    link = tmp_path / "payloads.jsonl"
    link.symlink_to(dead_letters)
    config = {
        **BASE,
        "dry_run": True,
        "dead_letter_path": str(dead_letters),
        "dry_run_path": str(link),
    }
    assert settings_errors(config) == [
        f"dry_run_path {str(link)!r}: is the file dead_letter_path writes too: "
        "give each its own file"
    ]


def test_a_dry_run_may_not_write_its_payloads_into_a_hard_link_of_the_dead_letter_file(
    tmp_path: Path,
) -> None:
    dead_letters = tmp_path / "dead.jsonl"
    dead_letters.write_text('{"stream": "kept"}\n')
    hard_link = tmp_path / "payloads.jsonl"
    os.link(dead_letters, hard_link)
    config = {
        **BASE,
        "dry_run": True,
        "dead_letter_path": str(dead_letters),
        "dry_run_path": str(hard_link),
    }
    assert settings_errors(config) == [
        f"dry_run_path {str(hard_link)!r}: is the file dead_letter_path writes too: "
        "give each its own file"
    ]


def test_outputs_may_share_a_device(tmp_path: Path) -> None:
    config = {**BASE, "dead_letter_path": "/dev/null", "summary_path": "/dev/null"}
    assert settings_errors(config) == []


@pytest.mark.parametrize("link_to", ["missing.json", "config.json"], ids=["dangling", "loop"])
def test_a_config_path_that_is_a_symbolic_link_to_no_file_says_so(
    tmp_path: Path, link_to: str
) -> None:
    # `ls` lists the link: "no such file" would contradict it
    config_path = tmp_path / "config.json"
    config_path.symlink_to(tmp_path / link_to)
    with pytest.raises(ConfigFileError) as raised:
        read_config_files([str(config_path)])
    assert str(raised.value) == (
        f"{config_path}: is a symbolic link to no file (its target is missing, or links loop)"
    )

"""`mmdesk` alone: the desktop app where there is a display, the help where there is none."""

from __future__ import annotations

import pytest

from mmdesk import cli


def test_no_display_prints_help_and_says_why(monkeypatch, capsys) -> None:
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cli.sys, "platform", "linux")
    assert cli.main([]) == 0
    out = capsys.readouterr()
    assert "usage: mmdesk" in out.out and "opens the desktop app" in out.err


def test_with_a_display_it_runs_the_gui_command(monkeypatch) -> None:
    import mmdesk.commands.gui as gui

    monkeypatch.setenv("DISPLAY", ":99")
    seen = {}
    monkeypatch.setattr(gui, "run", lambda args: seen.setdefault("command", args.command) and 0)
    assert cli.main([]) == 0
    assert seen == {"command": "gui"}


@pytest.mark.parametrize("argv", [["--version"]])
def test_version_still_works(argv, capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert "mmdesk" in capsys.readouterr().out


def test_train_without_the_training_side_is_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # as in the installed app
    assert cli.main(["train", "fusion"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training needs PyTorch" in err[0]

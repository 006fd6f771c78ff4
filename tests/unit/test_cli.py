"""The command line: a config error exits with its code and names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import cli, errors


def test_cli_exits_with_config_code_and_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[sources]]\nbucket = "b"\n[labelstudio]\nlayout = "grid"\n')
    assert cli.main(["once", "-c", str(path)]) == errors.CONFIG
    err = capsys.readouterr().err
    assert "labelstudio.layout = 'grid'" in err and "'segments' or 'whole'" in err

"""``switchboard crm rebuild`` and ``switchboard analytics rebuild`` are one command line
(``runtime.rebuild.rebuild_main``): a wrong setting stops it with one sentence and status 2
before anything connects or runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from switchboard.analytics import cli as analytics_cli
from switchboard.crm import cli as crm_cli

CLIS = {"crm": crm_cli.main, "analytics": analytics_cli.main}


@pytest.mark.parametrize("service", list(CLIS))
def test_a_wrong_setting_is_one_sentence_and_status_2(
    service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main: Callable[[list[str]], int] = CLIS[service]
    monkeypatch.setenv(f"SWITCHBOARD_{service.upper()}_DATABASE_URL", "mysql://nowhere/db")
    assert main(["rebuild", "--keep-old"]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"{service}: setting SWITCHBOARD_{service.upper()}_DATABASE_URL ")
    assert "postgresql://" in out


@pytest.mark.parametrize("service", list(CLIS))
def test_rebuild_is_the_only_command(service: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        CLIS[service]([])
    assert exit_.value.code == 2
    assert f"usage: switchboard {service} [-h] {{rebuild}}" in capsys.readouterr().err

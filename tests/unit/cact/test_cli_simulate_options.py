"""`cact simulate --blank-sheets/--organiser`: what the day's truth will expect, refused before anything is sent."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cact.cli import app


@pytest.mark.parametrize("value, says", [("pemprov-aceh", "expected AGENCY=ORGANISER"),
                                          ("no-such-agency=kemendagri-ppk", "unknown agency(ies) no-such-agency")])
def test_a_bad_organiser_option_is_one_clear_error(value: str, says: str) -> None:
    result = CliRunner().invoke(app, ["simulate", "--participants", "5", "--organiser", value])
    assert result.exit_code == 2
    assert says in " ".join(result.output.replace("│", " ").split())

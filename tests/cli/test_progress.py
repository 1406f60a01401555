"""The CLI progress helper: plain lines when piped, a rich bar on a terminal, nothing when quiet."""

import io

from rich.console import Console

from nanosolve.cli.progress import stage_progress


def _console(terminal: bool):
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=100), buf


def test_plain_lines_when_not_a_terminal():
    con, buf = _console(False)
    with stage_progress(con) as p:
        p.stage("refining", total=20)
        for _ in range(20):
            p.advance()
        p.stage("writing")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "[stage 1] refining (20 steps)"
    counts = [ln.strip() for ln in lines if ln.strip().startswith("refining:")]
    # every 10 % (2 steps) and the end, each once, in order
    assert counts == [f"refining: {k}/20" for k in range(2, 21, 2)]
    assert lines[-1] == "[stage 2] writing"
    assert "\r" not in buf.getvalue() and "\x1b" not in buf.getvalue()


def test_stage_left_early_reports_its_last_count():
    con, buf = _console(False)
    with stage_progress(con) as p:
        p.stage("sampling", total=100)
        p.callback(37, 100)
    assert buf.getvalue().splitlines()[-1].strip() == "sampling: 37/100"


def test_quiet_prints_nothing():
    for terminal in (False, True):
        con, buf = _console(terminal)
        with stage_progress(con, quiet=True) as p:
            p.stage("a", total=3)
            p.advance(3)
            p.log("hello")
        assert buf.getvalue() == ""


def test_terminal_shows_a_bar():
    con, buf = _console(True)
    with stage_progress(con) as p:
        assert p.live
        p.stage("refining", total=4)
        p.advance(4)
    out = buf.getvalue()
    assert "refining" in out and "4/4" in out


def test_stage_callback_form():
    con, buf = _console(False)
    with stage_progress(con) as p:
        p("refining", "best 10 candidates")
        p("writing the report")
    assert buf.getvalue().splitlines() == ["[stage 1] refining: best 10 candidates", "[stage 2] writing the report"]


def test_mute_lasts_for_the_command_only():
    import typer
    from typer.testing import CliRunner

    from nanosolve.cli.progress import mute

    con, buf = _console(False)
    app = typer.Typer()

    @app.command()
    def run(ctx: typer.Context, quiet: bool = typer.Option(False, "--quiet")):
        mute(con, quiet, ctx)
        with stage_progress(con, quiet) as p:
            p("working")
        con.print("result table")

    assert CliRunner().invoke(app, ["--quiet"]).exit_code == 0
    assert buf.getvalue() == "" and con.quiet is False  # restored when the command ended
    assert CliRunner().invoke(app, []).exit_code == 0
    assert buf.getvalue().splitlines() == ["[stage 1] working", "result table"]

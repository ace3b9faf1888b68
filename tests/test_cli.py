import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rlvr.cli import COMMANDS, Command, _resolve, main

STAGES = ["data", "pretrain", "sft", "dpo", "rm", "ppo", "eval", "verify", "pipeline"]


def test_help_lists_every_stage_one_line_each():
    out = subprocess.run(
        [sys.executable, "-m", "rlvr.cli", "--help"], capture_output=True, text=True, check=True
    )
    for name in STAGES:
        lines = [line for line in out.stdout.splitlines() if line.strip().startswith(name + " ")]
        assert len(lines) == 1, name
        assert COMMANDS[name].help in lines[0]


def test_unbuilt_stage_says_so_and_fails(capsys, monkeypatch):
    """No target yet, or a target whose module is not written yet: exit 3, naming the issue if known."""
    monkeypatch.setitem(COMMANDS, "later", Command("a stage to come", None, 99))
    monkeypatch.setitem(COMMANDS, "unwritten", Command("a stage to come", "rlvr.no_such_stage:main"))
    assert main(["later", "--config", "x.yaml"]) == 3
    assert "rlvr later: this stage is not built yet (issue #99)." in capsys.readouterr().err
    assert main(["unwritten", "--config", "x.yaml"]) == 3
    assert "rlvr unwritten: this stage is not built yet." in capsys.readouterr().err


def test_every_listed_stage_is_built():
    """A typo in a target's module would otherwise read as "not built yet" instead of failing."""
    assert set(STAGES) <= set(COMMANDS)
    for name, command in COMMANDS.items():
        assert callable(_resolve(command)), name


def test_unknown_command_and_no_command():
    with pytest.raises(SystemExit):
        main(["trian"])
    assert main([]) == 2


def test_config_errors_exit_2(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--no_such_key=1"]) == 2
    assert "config error" in capsys.readouterr().err


def test_sigterm_unwinds_the_command_so_cleanup_runs(tmp_path) -> None:
    """`kill` must reach `finally` blocks (a vLLM engine's workers are shut down there)."""
    marker = tmp_path / "cleaned-up"
    (tmp_path / "sleeper.py").write_text(
        textwrap.dedent(f"""
        import time
        def main(argv):
            try:
                print("ready", flush=True)
                time.sleep(60)
            finally:
                open({str(marker)!r}, "w").close()
    """)
    )
    code = (
        "import sys; from rlvr import cli; "
        "cli.COMMANDS['sleep'] = cli.Command('test', 'sleeper:main'); sys.exit(cli.main(['sleep']))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert marker.exists() and time.monotonic() - started < 30

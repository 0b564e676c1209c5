"""What the fixture scripts (tests/*/make_*.py) share: running one of ordo's programs."""
import subprocess
import sys


def run_tool(cmd, what=None):
    """Runs cmd (a list; its first item a program); returns its stdout. A failure ends the script
    with the command (or `what`) and the program's stderr."""
    cmd = [str(c) for c in cmd]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{what or ' '.join(cmd)} failed (exit {run.returncode}): {run.stderr}")
    return run.stdout

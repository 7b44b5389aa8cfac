"""Generation progress: tqdm log lines every few seconds off a terminal, a bar on one (runner.Progress)."""

import fcntl
import logging
import os
import pty
import struct
import subprocess
import sys
import termios

from evoselfcode.datagen.pipeline.runner import Progress


def test_log_lines_give_done_failed_rate_and_the_last_line_once(caplog):
    caplog.set_level(logging.INFO, logger="evoselfcode.runner")
    progress = Progress(total=6, resumed=2, every=3600)  # no periodic line in this test: only the first and last
    for failed in (False, True, False, True):
        progress.step(failed)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "2 of 6 requests answered before, from the answer store"
    assert lines[1].startswith("2/6 requests, failed=0 [")
    assert lines[-1].startswith("6/6 requests, failed=2 [") and "req/s]" in lines[-1]
    assert len(lines) == 3


def test_log_lines_come_every_interval(caplog):
    caplog.set_level(logging.INFO, logger="evoselfcode.runner")
    progress = Progress(total=4, resumed=0, every=0)
    for _ in range(4):
        progress.step(False)
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["0/4", "1/4", "2/4", "3/4", "4/4"]


def test_an_answered_shard_logs_once_and_needs_no_step(caplog):
    caplog.set_level(logging.INFO, logger="evoselfcode.runner")
    Progress(total=3, resumed=3, every=10)
    assert [r.getMessage().split(" [")[0] for r in caplog.records] == [
        "3 of 3 requests answered before, from the answer store",
        "3/3 requests, failed=0",
    ]


def test_a_terminal_gets_a_tqdm_bar():
    script = (
        "from evoselfcode.datagen.pipeline.runner import Progress\n"
        "p = Progress(total=5, resumed=0, every=3600)\n"
        "[p.step(i == 2) for i in range(5)]\n"
    )
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 wide
    proc = subprocess.run([sys.executable, "-c", script], stderr=follower, stdout=subprocess.DEVNULL, timeout=60)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert proc.returncode == 0
    text = out.decode()
    assert "5/5" in text and "failed=1" in text and "|" in text  # a bar, with the count and failures so far

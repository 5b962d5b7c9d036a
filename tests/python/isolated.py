"""Run snippets of Python each in a process of its own, so that a crash fails one test, not pytest.

A server process imports icgt once, then forks a child per snippet; the child runs the snippet and
reports how it ended (the exception's type and message, or the value of ``result``), and a child
killed by a signal (SIGSEGV, SIGFPE, SIGABRT) is reported as such. Forking after the import keeps
each case at a fraction of a second instead of a fresh interpreter's seconds. The server does no
parallel work itself, so its children start with no thread pools to inherit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SERVER = r'''
import contextlib, io, json, os, signal, sys, traceback
import numpy as np
import torch
import icgt

def run_case(code, out):
    stderr, stdout = io.StringIO(), io.StringIO()  # the server's stdout carries its replies
    namespace = {"icgt": icgt, "torch": torch, "np": np}
    report = {}
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            exec(compile(code, "<case>", "exec"), namespace)
        report = {"type": None, "result": repr(namespace.get("result"))}
    except BaseException as error:
        report = {"type": type(error).__name__, "message": str(error),
                  "traceback": traceback.format_exc(limit=4)}
    report["stderr"], report["stdout"] = stderr.getvalue(), stdout.getvalue()
    out.write(json.dumps(report).encode())

for line in sys.stdin:
    case = json.loads(line)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        with os.fdopen(write, "wb") as out:
            os.environ.update(case["env"])
            run_case(case["code"], out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        report = {"type": "crash", "message": f"killed by {signal.Signals(os.WTERMSIG(status)).name}"}
    elif not data:
        report = {"type": "crash", "message": f"exited with status {os.WEXITSTATUS(status)} and no report"}
    else:
        report = json.loads(data)
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
'''


class IsolatedRunner:
    """``run(code)`` executes code in a fresh child process; ``result`` is the value it reports.

    The namespace holds icgt, torch and np; the report is a dict with ``type`` (None when the code
    finished, the exception's class name, or "crash"), ``message``, ``result`` and ``stderr``.
    """

    def __init__(self) -> None:
        self.server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True)

    def run(self, code: str, env: dict[str, str] | None = None) -> dict:
        self.server.stdin.write(json.dumps({"code": textwrap.dedent(code), "env": env or {}}) + "\n")
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError(f"the case server stopped (status {self.server.poll()})")
        return json.loads(line)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=30)

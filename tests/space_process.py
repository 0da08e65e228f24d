"""Run the demo app in a subprocess on 127.0.0.1, for the Space tests and benchmarks.

The app prints ``profile-rec demo ready in S s (...) at URL`` once it serves;
:func:`running_app` waits for that line, yields the URL, and stops the process
afterwards. Every process runs under ``timeout``, so none outlives a crashed run.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

READY = re.compile(
    r"ready in (?P<seconds>[\d.]+) s \((?P<cpu>[\d.]+) s CPU;.* at (?P<url>http://\S+?)/?$"
)
#: The longest any app process may live, in seconds.
LIFETIME = 600
SITE_PACKAGES = sysconfig.get_paths()["purelib"]


@dataclass
class AppProcess:
    url: str
    #: Start-up time the app itself printed, and the CPU time it had used by then.
    ready_seconds: float
    cpu_seconds: float
    #: Wall time from spawning the process to its "ready" line.
    wall_seconds: float
    output: list[str] = field(default_factory=list)


def app_env(home: Path, **extra: str) -> dict[str, str]:
    """A sealed environment: nothing from the developer's own Hub or Gradio setup."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home / "home"),
        "HF_HOME": str(home / "hf-home"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_TEMP_DIR": str(home / "gradio"),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def bundle_command(script: str = "app.py") -> list[str]:
    """Run ``script`` with only its folder and site-packages importable.

    ``-S`` skips site-packages' ``.pth`` files, among them the editable install's
    hook that maps ``profile_rec`` to this repo's ``src/``; PYTHONPATH (set by
    :func:`bundle_env`) then adds site-packages itself back.
    """
    return [sys.executable, "-S", script]


def bundle_env(home: Path, **extra: str) -> dict[str, str]:
    return app_env(home, PYTHONPATH=SITE_PACKAGES, **extra)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(
    command: Sequence[str],
    *,
    cwd: str | os.PathLike,
    env: Mapping[str, str],
    start_timeout: float = 180.0,
) -> Iterator[AppProcess]:
    """Start ``command``, wait for the app's ready line, yield, then stop it."""
    started = time.perf_counter()
    process = subprocess.Popen(
        ["timeout", str(LIFETIME), *command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    ready: dict[str, float | str] = {}
    seen = threading.Event()

    def read() -> None:
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            match = READY.search(line.strip())
            if match and not seen.is_set():
                ready.update(
                    url=match["url"],
                    seconds=float(match["seconds"]),
                    cpu=float(match["cpu"]),
                    wall=time.perf_counter() - started,
                )
                seen.set()
        seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not seen.wait(start_timeout) or not ready:
            raise AssertionError(
                f"The app did not become ready within {start_timeout:.0f} s "
                f"(exit code {process.poll()}). Its output:\n" + "\n".join(output)
            )
        yield AppProcess(
            url=str(ready["url"]),
            ready_seconds=float(ready["seconds"]),
            cpu_seconds=float(ready["cpu"]),
            wall_seconds=float(ready["wall"]),
            output=output,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)

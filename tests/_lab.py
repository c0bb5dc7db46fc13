"""A real JupyterLab on a free loopback port (temp root, token) and a page driver for the tests.

The page is driven through the Chrome DevTools protocol with ``userGesture: false``:
Playwright's own ``evaluate`` counts as a user gesture, which would lift the autoplay
policy the suspended-audio test needs to see. ``AUDIO_PROBE`` records every Web Audio source
the page starts (bench/browser_bench.py measures what the user hears with it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AUTOPLAY = "--autoplay-policy=no-user-gesture-required"

# An init script: every AudioBufferSourceNode start (and stop) lands in window.__audioLog with
# the context's clock and the page's clock at the call, so what plays when can be rebuilt.
AUDIO_PROBE = """
(() => {
  if (window.__audioLog || typeof AudioBufferSourceNode === "undefined") return;
  const log = (window.__audioLog = []);
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (when = 0, offset = 0, ...rest) {
    const ctx = this.context;
    const out = ctx.getOutputTimestamp ? ctx.getOutputTimestamp() : {};
    const entry = {
      when, offset, buffer: this.buffer ? this.buffer.duration : 0,
      ctxTime: ctx.currentTime, perf: performance.now(),
      outCtx: out.contextTime || 0, outPerf: out.performanceTime || 0,
      latency: (ctx.baseLatency || 0) + (ctx.outputLatency || 0), stopAt: null,
    };
    this.__probe = entry;
    log.push(entry);
    return start.call(this, when, offset, ...rest);
  };
  const stop = AudioScheduledSourceNode.prototype.stop;
  AudioScheduledSourceNode.prototype.stop = function (when = 0) {
    if (this.__probe) this.__probe.stopAt = Math.max(when, this.context.currentTime);
    return stop.call(this, when);
  };
})();
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Lab:
    """``with Lab(tmp_path) as lab:`` serves ``lab.root`` at ``lab.url`` until the block ends."""

    def __init__(self, root: Path) -> None:
        self.root = root / "notebooks"
        self.home = root / "home"  # Jupyter config, data, runtime and IPython dirs: all fresh
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "lab.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 90) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
            path = self.home / name.lower()
            path.mkdir(parents=True, exist_ok=True)
            env[name] = str(path)
        env["PATH"] = (
            f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # kernel = this venv
        )
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.workspaces_dir={self.home / 'workspaces'}",
            f"--LabApp.user_settings_dir={self.home / 'settings'}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.allow_root=True",  # CI containers run as root
            "--ServerApp.terminals_enabled=False",
        ]
        # No news pop-up over the notebook (it would cover screenshots).
        settings = self.home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false"})
        )
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited early:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(
                    f"{self.url}/api/status?token={self.token}", timeout=2
                ) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{self.log_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None
        if hasattr(self, "log"):
            self.log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def add_notebook(self, source: Path, name: str | None = None) -> str:
        target = self.root / (name or source.name)
        shutil.copy(source, target)
        return target.name

    def write_notebook(self, name: str, sources: list[str]) -> str:
        """A new notebook of code cells with these sources; its name."""
        cells: list[dict[str, Any]] = [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": s,
            }
            for s in sources
        ]
        kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
        notebook = {"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4}
        (self.root / name).write_text(json.dumps({**notebook, "nbformat_minor": 4}))
        return name

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}?token={self.token}", method=method)
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


def launch(playwright: Any, autoplay: bool = True) -> Any:
    args = [*CHROMIUM_ARGS, AUTOPLAY] if autoplay else list(CHROMIUM_ARGS)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args)


class LabPage:
    """One browser tab on the Lab: open notebooks, run cells, read state — without gestures."""

    def __init__(self, page: Any, lab: Lab, probe_audio: bool = False) -> None:
        self.page = page
        self.lab = lab
        if probe_audio:
            page.add_init_script(AUDIO_PROBE)
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))
        self.cdp = page.context.new_cdp_session(page)

    def js(self, expression: str, timeout: float = 120) -> Any:
        """Evaluate in the page (awaiting promises) without granting user activation."""
        reply = self.cdp.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "userGesture": False,
                "timeout": int(timeout * 1000),
            },
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise RuntimeError(f"page error: {text}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 120, what: str = "") -> Any:
        """Poll `expression` until truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(
                f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()"
            )
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"waited {timeout} s for {what or expression}\n" + "\n".join(self.console[-30:])
                )
            time.sleep(0.2)

    def open(self, name: str) -> None:
        """Load the Lab on notebook `name` (a fresh workspace) and wait for its idle kernel."""
        self.page.goto(f"{self.lab.url}/lab/tree/{name}?reset&token={self.lab.token}")
        self.wait_for("Boolean(window.jupyterapp)", what="JupyterLab")
        self.js(
            "(async () => { await jupyterapp.started; await jupyterapp.restored; return true; })()"
        )
        # Every later expression reaches the notebook through window.__panel().
        self.js(
            "window.__panel = () => Array.from(jupyterapp.shell.widgets('main'))"
            f".find((w) => w.context && w.context.path === {json.dumps(name)}); true"
        )
        self.wait_for(
            "__panel() && __panel().context.isReady && __panel().content.widgets.length"
            " && __panel().sessionContext.session"
            " && __panel().sessionContext.session.kernel"
            " && __panel().sessionContext.session.kernel.status === 'idle'",
            timeout=120,
            what=f"{name} and an idle kernel",
        )
        self.js("jupyterapp.shell.activateById(__panel().id); true")

    def run_cell(self, index: int, wait: bool = True) -> Any:
        """Run cell `index` as the Run command does; with `wait`, its outputs once it finishes."""
        run = (
            "(async () => { const nb = __panel();"
            f" nb.content.activeCellIndex = {index};"
            f" (window.__ranAt = window.__ranAt || {{}})[{index}] = performance.now();"
            " const done = jupyterapp.commands.execute('notebook:run-cell');"
            + (" await done;" if wait else "")
            + f" return nb.content.widgets[{index}].model.outputs.toJSON(); }})()"
        )
        return self.js(run, timeout=600)

    def ran_at(self, index: int) -> float:
        """The page's clock (performance.now(), ms) when run_cell last ran cell `index`."""
        return float(self.js(f"window.__ranAt[{index}]"))

    def run_all(self) -> float:
        """Start the Run All command (no waiting); the page's clock when it started."""
        return float(
            self.js(
                "(() => { const t = performance.now();"
                " jupyterapp.commands.execute('notebook:run-all-cells'); return t; })()"
            )
        )

    def player_of(self, index: int, timeout: float = 120) -> str:
        """The id of the player shown in cell `index`'s output (waits for it to render)."""
        return str(
            self.wait_for(
                f"__panel().content.widgets[{index}].node"
                ".querySelector('[data-kokoro-player]').dataset.kokoroPlayer",
                timeout=timeout,
                what=f"a player in cell {index}",
            )
        )

    def audio_log(self) -> list[dict[str, Any]]:
        """Every source started since the page loaded (needs ``probe_audio``)."""
        return list(self.js("window.__audioLog || []"))

    def outputs(self, index: int) -> Any:
        return self.js(f"__panel().content.widgets[{index}].model.outputs.toJSON()")

    def text_output(self, index: int) -> str:
        parts = []
        for output in self.outputs(index):
            if output.get("output_type") == "stream":
                parts.append(
                    output["text"] if isinstance(output["text"], str) else "".join(output["text"])
                )
            elif output.get("output_type") == "error":
                parts.append(f"{output['ename']}: {output['evalue']}")
        return "".join(parts)

    def players(self) -> list[dict[str, Any]]:
        return self.js("Object.values(window.__kokoroPlayers || {}).map((p) => p.snapshot())") or []

    def player(self, player_id: str) -> dict[str, Any]:
        return dict(self.js(f"window.__kokoroPlayers[{json.dumps(player_id)}].snapshot()"))

    def save(self) -> None:
        self.js("jupyterapp.commands.execute('docmanager:save')")
        self.wait_for("!__panel().context.model.dirty", timeout=30, what="the save")

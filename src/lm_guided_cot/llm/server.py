"""llama.cpp servers that this process starts for the client, and stops when it ends.

``ensure_server(config)`` starts the server (or returns the one this process already runs for
the same settings, so the stages of a run share it), waits until it answers, and records it in
``<log_dir>/llama-server.<owner pid>.<port>.json``. Servers stop at interpreter exit, on
SIGTERM, and (Linux) with their parent even when it is killed: the child asks the kernel for a
SIGTERM when its parent dies. A record whose owner is dead while its server still runs is
a server left by a killed run: it is stopped, with a warning, before a new one starts.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from lm_guided_cot.errors import ConfigurationError, RunError
from lm_guided_cot.llm.config import ServerConfig

log = logging.getLogger(__name__)

SERVER_BINARY_ENV = "LMCOT_LLAMA_SERVER"
_HOST = "127.0.0.1"


class ServerError(RunError):
    """The server could not be started, or another program holds its port."""


def find_llama_server() -> str | None:
    """llama.cpp's native ``llama-server``: ``$LMCOT_LLAMA_SERVER``, the venv's bin, the PATH."""
    if os.environ.get(SERVER_BINARY_ENV):
        return os.environ[SERVER_BINARY_ENV]
    beside = Path(sys.prefix) / "bin" / "llama-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("llama-server")


def has_llama_cpp_python() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("llama_cpp", "uvicorn"))


def available_backend(config: ServerConfig) -> str:
    """The backend a config will run with, or a ``ServerError`` saying how to install one."""
    native = find_llama_server()
    if config.backend in ("auto", "llama-server") and native:
        return "llama-server"
    if config.backend in ("auto", "llama-cpp-python") and has_llama_cpp_python():
        return "llama-cpp-python"
    raise ServerError(
        f"no llama.cpp server for backend {config.backend!r}: bin/_venv.sh builds llama-server "
        f"into the venv (bash bin/build_llama_server.sh), or set ${SERVER_BINARY_ENV}; "
        "for the Python server: pip install 'llama-cpp-python[server]'"
    )


class LlamaServer:
    """One server process (see the module docstring)."""

    def __init__(self, config: ServerConfig, log_dir: Path) -> None:
        self.config = config
        self.log_dir = log_dir
        self.backend = available_backend(config)
        self.port = config.port or _free_port()
        self.process: subprocess.Popen | None = None
        self.owned = False
        self.log_path = log_dir / f"llama-server.{config.alias}.{self.port}.log"
        self._record = log_dir / f"llama-server.{os.getpid()}.{self.port}.json"

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"

    def command(self, model_path: Path) -> list[str]:
        cfg = self.config
        threads = str(cfg.threads or os.cpu_count() or 1)
        if self.backend == "llama-server":
            command = [find_llama_server() or "llama-server", "--model", str(model_path)]
            command += ["--alias", cfg.alias, "--host", _HOST, "--port", str(self.port)]
            command += ["--threads", threads, "--threads-batch", threads]
            # One KV pool for all slots, each slot up to ctx_size: no slot is starved of context.
            command += [
                "--ctx-size",
                str(cfg.ctx_size * cfg.parallel),
                "--parallel",
                str(cfg.parallel),
            ]
            command += ["--kv-unified", "--metrics", "--no-webui"]
        else:
            command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path)]
            command += ["--model_alias", cfg.alias, "--host", _HOST, "--port", str(self.port)]
            command += ["--n_threads", threads, "--n_threads_batch", threads]
            command += ["--n_ctx", str(cfg.ctx_size)]
        return command + list(cfg.extra_args)

    def start(self) -> None:
        from lm_guided_cot.model_specs import gguf_path

        self.log_dir.mkdir(parents=True, exist_ok=True)
        stop_stale_servers(self.log_dir)
        if self.config.port is not None and _answers(self.url):
            served = _served_models(self.url)
            if self.config.alias in served:
                log.info("using the llama.cpp server already on port %d", self.port)
                return  # another process (another DDP rank) runs it: not ours to stop
            raise ServerError(
                f"port {self.port} is taken by a server of {served or 'another program'}, "
                f"not {self.config.alias}: choose another server.port"
            )
        try:
            model_path = gguf_path(self.config.model)
        except (FileNotFoundError, LookupError) as err:
            raise ConfigurationError(f"server.model: {err}") from None
        command = self.command(model_path)
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"\n# lmcot: {' '.join(command)}\n".encode())
            log_file.flush()
            self.process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
                preexec_fn=_die_with_parent if _in_main_thread() else None,
            )
        self.owned = True
        _write_json(
            self._record,
            {
                "pid": self.process.pid,
                "owner": os.getpid(),
                "port": self.port,
                "model": str(model_path),
                "log": str(self.log_path),
            },
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                self._record.unlink(missing_ok=True)
                raise ServerError(
                    f"the llama.cpp server exited with code {self.process.returncode} while "
                    f"starting; its log ({self.log_path}) ends with:\n{_tail(self.log_path)}"
                )
            if _answers(self.url):
                return
            time.sleep(0.2)
        self.stop()
        raise ServerError(
            f"the llama.cpp server did not answer within {self.config.startup_timeout:.0f} s "
            f"(server.startup_timeout); see {self.log_path}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._record.unlink(missing_ok=True)

    def metrics(self) -> dict[str, float]:
        """The native server's Prometheus counters (``llamacpp:...``), empty for others."""
        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except (urllib.error.URLError, OSError):
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out


# ---- one server per settings, for the life of the process ------------------------------------

_servers: dict[tuple, LlamaServer] = {}
_lock = threading.Lock()
_handlers_installed = False


def ensure_server(config: ServerConfig, default_log_dir: str | Path) -> LlamaServer:
    """The running server for these settings, started (and waited for) on first use."""
    log_dir = Path(config.log_dir or default_log_dir)
    c = config
    key = (c.model, c.backend, c.port, c.threads, c.ctx_size, c.parallel, tuple(c.extra_args))
    key += (str(log_dir.resolve()),)
    with _lock:
        server = _servers.get(key)
        if server is not None:
            if server.process is None or server.process.poll() is None:
                return server
            log.warning("the llama.cpp server exited (see %s); starting it again", server.log_path)
            server.stop()  # forget its record
        server = LlamaServer(config, log_dir)
        _install_exit_handlers()
        server.start()
        _servers[key] = server
        return server


def stop_all() -> None:
    """Stop every server this process started."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


def stop_stale_servers(log_dir: Path) -> list[int]:
    """Stop servers recorded in ``log_dir`` whose owner process is gone; their pids."""
    stopped = []
    for record in sorted(log_dir.glob("llama-server.*.json")):
        try:
            info = json.loads(record.read_text())
            pid, owner = int(info["pid"]), int(info["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(owner):
            continue  # a live run's server
        if _alive(pid) and "llama" in _cmdline(pid):
            log.warning(
                "stopping a llama.cpp server (pid %d, port %s) left running by a run that was "
                "killed (pid %d); its log: %s",
                pid,
                info.get("port"),
                owner,
                info.get("log"),
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            _wait_gone(pid, 10.0)
            stopped.append(pid)
        record.unlink(missing_ok=True)
    return stopped


def _install_exit_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(stop_all)
    if not _in_main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        stop_all()
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


# ---- helpers --------------------------------------------------------------------------------


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((_HOST, 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    """The server is up and has loaded its model (llama.cpp answers 503 while loading)."""
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _served_models(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as reply:
            return [m.get("id", "") for m in json.load(reply).get("data", [])]
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        return state.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone
    return True


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _write_json(path: Path, data: dict) -> None:
    from lm_guided_cot.files import write_atomically

    write_atomically(path, json.dumps(data))


__all__ = [
    "LlamaServer",
    "ServerError",
    "available_backend",
    "ensure_server",
    "find_llama_server",
    "stop_all",
    "stop_stale_servers",
]

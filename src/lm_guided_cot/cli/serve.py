"""``lmcot serve``: a llama.cpp server for a GGUF model in the foreground."""

from __future__ import annotations

from jsonargparse import auto_cli

from lm_guided_cot.errors import RunError


def serve_model(
    model: str,
    backend: str = "auto",
    port: int = 8080,
    threads: int | None = None,
    ctx_size: int = 4096,
    parallel: int = 1,
    log_dir: str = ".lmcot_cache",
) -> None:
    """Run a llama.cpp server for a GGUF model in the foreground until Ctrl-C.

    Args:
        model: a registry name (``lmcot models list``), ``smollm2`` or a path to a .gguf file.
        backend: ``llama-server``, ``llama-cpp-python`` or ``auto``.
        port: port on 127.0.0.1.
        threads: CPU threads (default: all cores).
        ctx_size: context length of each slot, in tokens.
        parallel: requests decoded at once (native backend).
        log_dir: folder of the server's log file.
    """
    import signal
    import time
    from pathlib import Path

    from lm_guided_cot.llm.config import ServerConfig
    from lm_guided_cot.llm.server import ensure_server, stop_all

    config = ServerConfig(
        model=model,
        backend=backend,  # type: ignore[arg-type]
        port=port,
        threads=threads,
        ctx_size=ctx_size,
        parallel=parallel,
        log_dir=log_dir,
    )
    # Ctrl-C must stop it even when started from a shell that ignores SIGINT (cmd &).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    server = ensure_server(config, Path(log_dir))
    try:
        print(
            f"{server.backend} serving {config.alias} at {server.api_base} (log: {server.log_path})\n"
            f"use it with: --llm.model openai/{config.alias} --llm.api_base {server.api_base}\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        while server.process is None or server.process.poll() is None:
            time.sleep(0.5)
        raise RunError(f"the server exited with code {server.process.returncode}")
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


def serve(argv: list[str]) -> None:
    """Run a llama.cpp server for a GGUF model in the foreground (lmcot serve MODEL)."""
    auto_cli(serve_model, args=argv, prog="lmcot serve")

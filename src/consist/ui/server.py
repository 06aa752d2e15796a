"""Serving the web page: a loopback socket (a free port by default), the URL, uvicorn."""

from __future__ import annotations

import ipaddress
import socket
import sys
import webbrowser
from collections.abc import Callable
from typing import TYPE_CHECKING

from consist.ui.app import _ui_import_error, create_app

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.tracker import Tracker

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse an address other machines can reach unless ``allow_remote``.

    Raises
    ------
    ValueError
        Naming ``host`` and how to allow it.
    """
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be an address such as '127.0.0.1', got {host!r}")
    if not is_loopback(host) and not allow_remote:
        raise ValueError(
            f"host={host!r} would let other machines read this store: the web page has no "
            "login. Use host='127.0.0.1' (default), or pass allow_remote=True "
            "(`consist ui --allow-remote`) on a trusted network"
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: a free one, chosen by the OS)."""
    name = host.strip("[]")
    if name == "localhost":
        name = "127.0.0.1"
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((name, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def page_url(sock: socket.socket) -> str:
    """``http://HOST:PORT/`` of a bound socket (IPv6 addresses in brackets)."""
    address, port = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    return f"http://{shown}:{port}/"


def serve_ui(
    tracker: Tracker,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    open_browser: bool = False,
    allow_remote: bool = False,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the read-only web page of ``tracker``'s store; return when interrupted (Ctrl-C).

    The Python entry to what ``consist ui`` opens (there is no
    ``Tracker.serve_ui``: the page is built on the tracker, not part of it).
    The URL is printed before serving starts.

    Parameters
    ----------
    tracker:
        A tracker with a database; open it with ``read_only=True`` so the
        page never blocks a writer longer than a read.
    host:
        Address to listen on. Loopback only (``127.0.0.1``, ``::1``,
        ``localhost``) unless ``allow_remote``.
    port:
        TCP port; 0 (default) picks a free one.
    open_browser:
        Open the page in the default web browser once listening.
    allow_remote:
        Allow a ``host`` other machines can reach (the page has no login:
        anyone who reaches it reads the store).
    announce:
        Called with the URL once the socket listens, before serving starts.
        Default: print ``Consist web page: URL`` on standard output.

    Raises
    ------
    ValueError
        For a non-loopback ``host`` without ``allow_remote``, a port outside
        0..65535, or a tracker without a database.
    OSError
        If the address cannot be bound (e.g. the port is in use).
    ImportError
        Without the ``ui`` extra (uvicorn, starlette), naming it.
    """
    check_host(host, allow_remote)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535 (0: a free port), got {port!r}")
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise _ui_import_error(exc) from exc
    allowed = None if allow_remote else LOOPBACK_NAMES
    app = create_app(tracker, allowed_hosts=allowed)
    sock = bind(host, port)
    url = page_url(sock)
    (announce or _print_url)(url)
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C: uvicorn shut down gracefully, then re-raised it
        pass
    finally:
        sock.close()


def _print_url(url: str) -> None:
    print(f"Consist web page: {url}  (read-only; Ctrl-C to stop)", file=sys.stdout, flush=True)

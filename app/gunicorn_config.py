"""How Vaultdesk is served: ``gunicorn -c python:app.gunicorn_config``.

One module, so ``scripts/run``, the tests and a production unit file start the same server.
Settings on the command line still win over these (``--workers 4``).

Threaded workers (gthread), because a vault download streams for as long as the client
takes to read it: a synchronous worker is held for all of that time, so two slow clients
fetching large files took every worker and the sign-in page stopped answering. A gthread
worker serves each request on one of its threads while its main loop keeps accepting and
keeps telling the arbiter it is alive, so a long download neither blocks pages nor gets
the worker killed by ``timeout``. Every download in flight holds one thread; a worker with
all its threads streaming would queue new requests, hence the generous default of threads.

The control socket (``gunicornc``) lives in the instance folder: gunicorn's default is one
path under the home folder (or ``$XDG_RUNTIME_DIR``) shared by every instance run by the
same user, where each new start silently took it over from the last.
"""

from __future__ import annotations

import os

from app.config import bind_address, instance_path

# A Unix socket path longer than this does not fit in ``sockaddr_un``.
_UNIX_PATH_MAX = 107


def _count(name: str, default: int) -> int:
    """A positive whole number from the environment; a clear error beats a silent default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, not {value}")
    return value


wsgi_app = "app:create_app()"
bind = [bind_address()]
worker_class = "gthread"
workers = _count("VAULTDESK_WEB_WORKERS", 2)
threads = _count("VAULTDESK_WEB_THREADS", 16)
graceful_timeout = 5
accesslog = "-"

control_socket = str(instance_path({}) / "gunicorn.ctl")
# A deep instance folder gives a path too long for a Unix socket: gunicorn would warn at
# every start and run without one anyway, so say so here instead of in the log.
control_socket_disable = len(os.fsencode(control_socket)) > _UNIX_PATH_MAX

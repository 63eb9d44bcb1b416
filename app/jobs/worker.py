"""The RQ worker as Vaultdesk runs it: inside the app context, fork-safe, with the scheduler."""

from __future__ import annotations

from typing import Any

from flask import Flask
from rq import Worker

from app.extensions import db, redis_client
from app.jobs import QUEUES


class AppWorker(Worker):
    """Each job runs in a forked work horse; it must not reuse the parent's DB connections.

    Two processes talking over one inherited socket corrupt each other's conversation, so
    the horse drops the inherited pool (without closing the parent's sockets) before work.
    """

    def main_work_horse(self, *args: Any, **kwargs: Any) -> None:
        db.engine.dispose(close=False)
        super().main_work_horse(*args, **kwargs)


def run_worker(app: Flask, queues: tuple[str, ...] = QUEUES, *, burst: bool = False) -> bool:
    """Work ``queues`` until stopped (or until empty with ``burst``), scheduler included."""
    with app.app_context():
        worker = AppWorker(list(queues), connection=redis_client.connection)
        return worker.work(with_scheduler=True, burst=burst)

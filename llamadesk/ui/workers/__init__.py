"""The one place the GUI makes threads (a test checks it): the engine's QThread, the background-query thread and the
model manager's task pool. Everything else in llamadesk/ui is event-driven on the GUI thread."""

from llamadesk.ui.workers.engine_host import (
    EngineFactory,
    EngineHost,
    EngineWorker,
    default_engine_factory,
    engine_kind,
    live_hosts,
)
from llamadesk.ui.workers.queries import BackgroundQueries, live_query_runners
from llamadesk.ui.workers.tasks import SerialRunner, Task, TaskContext, TaskRunner

__all__ = [
    "BackgroundQueries",
    "EngineFactory",
    "EngineHost",
    "EngineWorker",
    "SerialRunner",
    "Task",
    "TaskContext",
    "TaskRunner",
    "default_engine_factory",
    "engine_kind",
    "live_hosts",
    "live_query_runners",
]

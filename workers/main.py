"""Worker entry point for the Dramatiq CLI: builds the broker and imports every actor module.

    python -m dramatiq workers.main --processes 2 --threads 8 --queues chat default scheduled

A workspace host also consumes ``workspace.<host>`` for each host named in
``AGENTFARM_WORKSPACE_HOSTS`` (``agentfarm worker --queues workspace.local`` sets it).
"""

from agentfarm.logs import configure_logging
from agentfarm.settings import get_settings, workspace_host_list
from agentfarm.tasks.broker import get_broker
from agentfarm.tasks.hosts import host_queue
from workers.boot import WorkerBoot

_settings = get_settings()
configure_logging(_settings.log_level, json=_settings.log_json, process="worker")
broker = get_broker()
broker.add_middleware(WorkerBoot())  # the worker's runtime: engine, Redis, leases

import workers.actors.chat  # noqa: E402  (every actor module, explicitly)
import workers.actors.insights  # noqa: E402
import workers.actors.push  # noqa: E402
import workers.actors.retention  # noqa: E402
import workers.actors.subagents  # noqa: E402
import workers.actors.tools  # noqa: E402
import workers.actors.usage  # noqa: E402
import workers.actors.workspaces  # noqa: E402,F401

for _host in workspace_host_list(_settings):
    broker.declare_queue(host_queue(_host))

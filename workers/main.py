"""Worker entry point for the Dramatiq CLI: builds the broker and imports every actor module.

python -m dramatiq workers.main --processes 2 --threads 8 --queues chat default scheduled
"""

from agentfarm.logs import configure_logging
from agentfarm.settings import get_settings
from workers.broker import get_broker

_settings = get_settings()
configure_logging(_settings.log_level, json=_settings.log_json, process="worker")
broker = get_broker()

import workers.actors.chat  # noqa: E402,F401  (every actor module, explicitly)

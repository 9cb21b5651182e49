"""Host-side view of the shared exception hierarchy (re-exported from the agent package).

The classes live in `device_agent.errors` (the host depends on the agent package, never the
reverse); this module gives them their host name, with the same `__all__`.
"""

from device_agent.errors import *  # noqa: F403
from device_agent.errors import __all__ as __all__

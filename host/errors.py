"""Host-side view of the shared exception hierarchy (re-exported from the agent package).

The classes live in `device_agent.errors` (the host depends on the agent package, never the
reverse); this module gives them their host name, plus the errors only the host raises.
"""

from device_agent.errors import *  # noqa: F403
from device_agent.errors import HilnasError
from device_agent.errors import __all__ as _shared


class StoreError(HilnasError):
    """The run store or the run's files cannot be written (a full disk, a read-only folder).

    Everything committed before it stays committed: a run that stops on it resumes once the
    cause is fixed.
    """


__all__ = [*_shared, "StoreError"]

"""Version numbers of the agent and of the device contract it speaks."""

from importlib import metadata

#: Bumped (with a new proto package) only for changes that break existing peers.
PROTOCOL_MAJOR = 1
#: Bumped when fields or calls are added; older peers ignore what they do not know.
PROTOCOL_MINOR = 0

try:
    AGENT_VERSION = metadata.version("hilnas")
except metadata.PackageNotFoundError:  # running from a source tree without installing
    AGENT_VERSION = "0.0.0+source"

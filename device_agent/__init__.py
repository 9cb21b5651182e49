"""hilnas device agent: runs candidate models on a board and reports measured figures."""

from device_agent.versions import AGENT_VERSION, PROTOCOL_MAJOR, PROTOCOL_MINOR

__all__ = ["AGENT_VERSION", "PROTOCOL_MAJOR", "PROTOCOL_MINOR"]

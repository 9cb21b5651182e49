"""Generated gRPC stubs for hilnas.agent.v1 (do not edit; run tools/gen_protos.py)."""

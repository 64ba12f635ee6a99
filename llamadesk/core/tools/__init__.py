"""Tools a model may call during a turn: their specs and the ToolBox (spec.py), the built-in tools (builtin.py), the
approval of each call (approval.py), and MCP servers (mcp_config.py, mcp_host.py)."""

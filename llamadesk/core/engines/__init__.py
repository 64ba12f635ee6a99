"""The engines behind one protocol (api.py): in-process llama.cpp (local.py, with local_load.py and local_stream.py),
a model of an OpenAI-compatible server (remote.py, the wire in remote_api.py), llama.cpp over RPC hosts in a child
process (rpc_child.py); choice.py is the one place that picks among them."""

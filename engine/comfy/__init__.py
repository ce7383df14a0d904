"""Talking to ComfyUI: the HTTP client, wire types, the shared websocket, outputs and error mapping."""

"""``engine validate``: a manifest against its workflow, a server's ``/object_info`` and Discord's limits."""

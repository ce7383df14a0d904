"""ComfyUI servers as the engine sees them: one backend, the pool, and routing."""

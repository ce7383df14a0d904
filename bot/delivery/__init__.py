"""A job's message: throttled progress, result embeds and files fitted to Discord."""

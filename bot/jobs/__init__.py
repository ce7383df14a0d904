"""From an interaction to a job: the flow, its guards and its input images."""

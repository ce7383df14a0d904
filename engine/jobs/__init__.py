"""One job from submission to its outputs: the runner, progress, and the job store."""

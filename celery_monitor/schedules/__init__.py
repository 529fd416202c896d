"""Periodic tasks: the beat entries the monitor can see, when they ran, and which ones missed a run."""

"""Tasks: the embedded arithmetic task with its step oracle, and loaders/graders for real data."""

"""The scheduler: where each provider runs (placement) and how its work is queued (executors)."""

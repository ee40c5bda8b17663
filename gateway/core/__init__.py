"""The policy/KPI core: the append-only event store (`store`) and what is computed from it."""

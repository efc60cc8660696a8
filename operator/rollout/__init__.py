"""The EdgeDeployment (rollout) controller: the pure planner and its helpers (waves, ordering,
revisions, conditions, fleet views), device liveness from Leases, and the controller pass."""

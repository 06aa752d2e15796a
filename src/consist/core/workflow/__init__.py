"""Multi-step workflows: scenarios (a header run with steps), the coupler that
passes artifacts between steps, and process-pool sweeps."""

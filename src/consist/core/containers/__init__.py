"""Container steps: mount plans and engines (podman, Docker API, apptainer)."""

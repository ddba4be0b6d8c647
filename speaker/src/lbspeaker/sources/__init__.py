"""Sources of desired state: what the speaker is asked to announce (the cluster's, beside the static config's)."""

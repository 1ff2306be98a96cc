"""pytest glue for llmops: options, marker, fixtures, hooks, terminal summary."""

"""Each family of verbs: one module each, a spec per verb (`spec.command`)."""

"""The domain: records, commands and their grammar, results, the run and clone state machines,
placement, savings, provenance and time parsing. Standard library only; it imports nothing else
of this project (an import-linter contract checks it)."""

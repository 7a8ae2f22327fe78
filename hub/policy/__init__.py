"""Permission policies: declarative allow/deny rules with obligations, compiled per route."""

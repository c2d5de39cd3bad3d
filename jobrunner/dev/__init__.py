"""Development tooling: an embedded Redis, the whole stack as child processes, the demo, py-spy."""

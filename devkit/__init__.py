"""The dev kit: devhub, the demo and the processes that tests, bench and the demo start. Not in the wheel."""

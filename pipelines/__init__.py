"""Dagster wiring: definitions, jobs, sensors, schedules, the demo runner and commands on the instance."""

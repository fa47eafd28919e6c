"""Packaged defaults: routing.yaml (rules) and workflow.yaml (states and actions)."""

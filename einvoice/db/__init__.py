"""Persistence: engine and session factory, typed models, repositories, unit of work."""

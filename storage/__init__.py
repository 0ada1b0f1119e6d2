"""Persistence: the repository (SQLite or PostgreSQL) and its migrations. The only package that
speaks SQL."""

from storage.repository import Repository

__all__ = ["Repository"]

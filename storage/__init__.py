"""Persistence: the SQLite repository and its migrations. The only package that speaks SQL."""

from storage.repository import Repository

__all__ = ["Repository"]

"""The vCenter adapter: the only package that imports pyVmomi."""

from bot.adapters.vcenter.client import VCenter

__all__ = ["VCenter"]

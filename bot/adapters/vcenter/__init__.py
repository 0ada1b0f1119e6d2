"""The vCenter adapter: the only package that imports pyVmomi. `VCenter` (client.py) is the one
public class; the modules beside it each own one concern (see client.py)."""

from bot.adapters.vcenter.client import VCenter

__all__ = ["VCenter"]

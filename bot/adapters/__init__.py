"""Adapters: the one home of each third-party library the services reach through a port
(pyVmomi, APScheduler, matplotlib) and of the lab vCenter (build, spec check, control, runs)."""

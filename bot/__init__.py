"""clones: deploy VMware vSphere linked-clone training labs from Slack or a terminal."""

__version__ = "0.1.0"

"""The lab vCenter: building, starting and controlling the Go simulator in `lab/`."""

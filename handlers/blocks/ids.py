"""The action ids of the bot's buttons: the blocks put them on buttons, the listeners
(`handlers.listeners.actions`) register for them. Renaming one strands the buttons already
posted, so they stay as they are."""

from __future__ import annotations

ACTION_CONFIRM = "clones_teardown_confirm"
ACTION_CANCEL = "clones_teardown_cancel"
ACTION_REFRESH_CONFIRM = "clones_refresh_confirm"
ACTION_REFRESH_CANCEL = "clones_refresh_cancel"
ACTION_ORPHANS_CONFIRM = "clones_orphans_confirm"
ACTION_ORPHANS_CANCEL = "clones_orphans_cancel"
ACTION_HOME_TEARDOWN = "clones_home_teardown"
ACTION_HOME_REFRESH = "clones_home_refresh"
ACTION_EXTEND = "clones_schedule_extend"  # the reminder's "Extend 2h"
ACTION_STRIP_NOW = "clones_schedule_strip_now"  # the reminder's "Strip back now"
ACTION_REBUILD_CONFIRM = "clones_rebuild_confirm"
ACTION_REBUILD_CANCEL = "clones_rebuild_cancel"
# A trainee's own VM (the Home tab and `/clones my`); the value names the VM by identity
# (`VmRef.value`: name, clone record id, instance UUID; older buttons: the name alone).
ACTION_MY_POWER_ON = "clones_my_power_on"
ACTION_MY_POWER_OFF = "clones_my_power_off"
ACTION_MY_RESET = "clones_my_reset"
ACTION_MY_REBUILD = "clones_my_rebuild"

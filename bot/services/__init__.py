"""The services: deploy, strip back, refresh, recovery, schedules, admin and queries, behind the
ports in `bot.ports`. They import the domain and the ports, never an adapter or a front end."""

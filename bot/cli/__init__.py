"""The terminal front end: `clones ...` takes the words `/clones ...` takes in Slack
(entry point: `bot.cli.main:main`)."""

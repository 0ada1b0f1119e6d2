"""The terminal front end: `clones ...` takes the words `/clones ...` takes in Slack
(the console script: `bot.bootstrap:cli`, which hands `bot.cli.main.main` its wiring)."""

"""The Slack front end: the Bolt app and its serving (`app`, `serving`), the listeners by kind
(`listeners`), the steps after an acknowledgement (`runs`, `confirming`, `replies`, `recovered`),
Block Kit rendering (`blocks`), and what keeps it safe and quick (`dedupe`, `confirmations`,
`jobs`, `progress`). The only package that imports slack_bolt and slack_sdk; it reaches vCenter
and SQLite only through the services (`bot.services`), as the terminal does.
"""

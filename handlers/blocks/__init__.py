"""Block Kit rendering: every message and view the bot shows in Slack, as plain data.

Nothing here calls Slack or the services; each function turns results into a `Rendered`
(fallback text for notifications plus blocks) so tests can assert exactly what a channel shows.
The words come from `bot.services.sentences` wherever the terminal says the same thing; this
package adds Slack's markup, icons, buttons and limits (50 blocks per message, 100 per Home view,
3,000 characters per section text, 2,000 per button value).

- `kit`: the shared helpers (sections, buttons, the progress bar, escaping, limits, errors);
- `ids`: the action ids the buttons carry (the listeners register the same ones);
- `runs`: a run's own message, from "starting" through progress to its summary;
- `plans`: what a destructive command would do, with Confirm / Cancel, and how that ended;
- `reads`: status, history, savings, types, plan, inventory and the audit log;
- `schedules`: schedule results and the owner's reminder;
- `admin`: prepare, power, check, resume and orphans;
- `home`: the App Home tab.
"""

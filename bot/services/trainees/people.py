"""Who the trainee services look up and message (the `Directory` and `Messenger` ports), and
turning what `assign` names (member IDs, e-mail addresses, a channel) into Slack member IDs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.domain import grammar
from bot.domain.errors import NotFoundError, UsageError
from bot.domain.trainees import Person, is_email
from bot.ports import Directory, Messenger

SLACKBOT = "USLACKBOT"  # a member of every channel, never a trainee

NO_PEOPLE = "there is no Slack connection here"


@dataclass
class People:
    """The workspace as the trainee services see it. Set by the composition root: the Slack
    bot's client, or the terminal's when a bot token is configured (`missing` says why not)."""

    directory: Directory | None = None
    messenger: Messenger | None = None
    # The people who run the lab (admins, operators, operator groups): never trainees.
    staff: Callable[[str], bool] = field(default=lambda user: False)
    missing: str = NO_PEOPLE

    def need_directory(self, what: str) -> Directory:
        if self.directory is None:
            raise UsageError(
                f"To {what} the bot asks Slack, but {self.missing}. Or name people by their "
                'Slack member ID (U0123ABCD), e.g. "assign nov-cohort U0123ABCD"'
            )
        return self.directory


@dataclass(frozen=True)
class Named:
    """The trainees a command names, as Slack member IDs in its order."""

    users: list[str]
    persons: dict[str, Person]  # those the directory was asked about
    left_out: int = 0  # channel members who are bots, deactivated, or run the lab


def resolve(people: People, command: grammar.Assign | grammar.Unassign) -> Named:
    """Member IDs for what the command names; UsageError (nothing done) for anyone unknown."""
    if isinstance(command, grammar.Assign) and command.roster:
        raise UsageError(
            f'A roster file is read by the terminal: run "clones assign {command.environment} '
            f'from {command.roster}" there. Here, name people ("assign '
            f'{command.environment} @alice @bob") or a channel ("from #channel").'
        )
    if isinstance(command, grammar.Assign) and command.channel:
        return _channel_members(people, command.channel)
    users: list[str] = []
    unknown: list[str] = []
    for who in command.people:
        if is_email(who):
            found = people.need_directory(f"look up {who}").user_by_email(who)
            if found is None:
                unknown.append(who)
                continue
            who = found
        if who not in users:
            users.append(who)
    if unknown:
        raise NotFoundError(
            f"No Slack member has the e-mail address {', '.join(unknown)}: check the spelling "
            "(or give their member ID). Nothing was changed."
        )
    return Named(users, {})


def _channel_members(people: People, channel: str) -> Named:
    """The channel's members who are trainees: not bots, not deactivated, not the people who
    run the lab. Who each is comes in one batch (`Directory.persons`), not one look-up each."""
    directory = people.need_directory("list a channel's members")
    members = list(dict.fromkeys(directory.channel_members(channel)))
    candidates = [m for m in members if m != SLACKBOT and not people.staff(m)]
    found = directory.persons(candidates) if candidates else {}
    persons = {m: found[m] for m in candidates if not (found[m].bot or found[m].deleted)}
    users = list(persons)
    if not users:
        raise NotFoundError(
            f"Channel {channel} has nobody to assign: its members are bots or run the lab. Invite "
            'the trainees to it, or name them: "assign ENV @alice @bob".'
        )
    return Named(users, persons, len(members) - len(users))

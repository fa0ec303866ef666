"""A command's reference, rendered from its ``argparse`` parser. Pure.

argparse has no public way to list a parser's arguments; ``_action_groups`` and
``_group_actions`` are what every argparse documenter reads (they have been stable since 2.7).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from docs_ref.md import cell, code, from_rst, table

USAGE_WIDTH = 100


@dataclass(frozen=True)
class Command:
    """One command line to document: its parser, and the heading and text around it."""

    title: str
    parser: argparse.ArgumentParser
    intro: str = ""


def usage(parser: argparse.ArgumentParser) -> str:
    """The parser's usage line(s), wrapped at :data:`USAGE_WIDTH` whatever the terminal."""
    formatter = argparse.HelpFormatter(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def option_name(action: argparse.Action) -> str:
    """How the argument is written: its flags (with a metavar when it takes a value), or a
    positional's name; choices are listed."""
    if action.choices is not None:
        value = "{" + ",".join(str(c) for c in action.choices) + "}"
    elif isinstance(action.metavar, str):
        value = action.metavar
    else:
        value = action.dest.upper()
    if not action.option_strings:
        return code(action.metavar if isinstance(action.metavar, str) else action.dest)
    flags = ", ".join(action.option_strings)
    return code(f"{flags} {value}" if action.nargs != 0 else flags)


def default_text(action: argparse.Action) -> str:
    """The default as the parser has it; what the program does without one is in the help."""
    if action.required:
        return "required"
    default = action.default
    if default in (None, argparse.SUPPRESS, False, []) or action.nargs == 0:
        return ""
    return code(str(default))


def help_text(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {**vars(action), "prog": prog}
    if action.choices is not None and not action.option_strings:
        text = f"{text} One of: {', '.join(f'`{c}`' for c in action.choices)}.".strip()
    repeatable = isinstance(action, argparse._AppendAction)
    if repeatable and "repeatable" not in text:
        text = f"{text} (repeatable)".strip()
    return cell(from_rst(text))


def render(command: Command, level: int = 2) -> str:
    """The command's section: heading, intro, usage, then a table per argument group."""
    parser = command.parser
    parts = [f"{'#' * level} {command.title}\n"]
    if command.intro:
        parts.append(command.intro.strip() + "\n")
    if parser.description:
        parts.append(from_rst(parser.description).strip() + "\n")
    parts.append(f"```text\n{usage(parser)}\n```\n")
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
        if not actions:
            continue
        title = (group.title or "arguments").capitalize()
        if len(parser._action_groups) > 1:
            parts.append(f"**{title}**\n")
        rows = [[option_name(a), default_text(a), help_text(a, parser.prog)] for a in actions]
        parts.append(table(["Argument", "Default", "Meaning"], rows))
    return "\n".join(parts)

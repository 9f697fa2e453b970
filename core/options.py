"""Command-line options generated from a frozen config dataclass, so a default lives only in the
dataclass: the option's type and default come from the field, its help (and flag name, choices and
lower bound, where they differ from the obvious) from a table next to the CLI.

A number below its bound is refused by argparse itself (exit 2, naming the option), before the
handler runs. Ground module: imports nothing of ours.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Option:
    help: str
    flag: str | None = None              # default: --field-name
    minimum: float | None = None         # refused below this (argparse error, exit 2)
    choices: tuple[str, ...] | None = None
    metavar: str | None = None


def _base(hint: Any) -> tuple[type, bool]:
    """(the field's type without None, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _bounded(kind: type, minimum: float | None) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n' if kind is int else ''} {kind.__name__}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, not {text}")
        return value
    parse.__name__ = kind.__name__       # argparse names the type in its messages
    return parse


def flag_of(name: str, option: Option) -> str:
    return option.flag or f"--{name.replace('_', '-')}"


def add_config_options(parser: argparse.ArgumentParser, cls: type, options: dict[str, Option],
                       skip: frozenset[str] = frozenset()) -> None:
    """One option per field of `cls` (dest: the field name, default: the field's), except the fields in
    `skip`, which keep their default; a field without a default is a required option. A new field in
    neither table still gets its option (--new-field, its help naming the field) rather than none."""
    hints = typing.get_type_hints(cls)
    unknown = set(options) - {f.name for f in dataclasses.fields(cls)}
    if unknown:                          # a renamed field: the table would silently stop reaching it
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        option = options.get(f.name) or Option(f"{cls.__name__}.{f.name}")
        kind, optional = _base(hints[f.name])
        has_default = f.default is not dataclasses.MISSING
        kwargs: dict[str, Any] = {"dest": f.name, "help": option.help}
        if kind is bool:
            # A tri-state bool (None: decided later) or one that defaults on needs --no-X as well.
            kwargs["action"] = argparse.BooleanOptionalAction if optional or f.default else "store_true"
            kwargs["default"] = f.default
        else:
            # The metavar follows the flag (--workers N... shows WORKERS), not the field name.
            metavar = option.metavar or (None if option.choices else flag_of(f.name, option)[2:].upper().replace("-", "_"))
            kwargs.update(type=_bounded(kind, option.minimum), metavar=metavar, choices=option.choices)
            if has_default:
                kwargs["default"] = f.default
            else:
                kwargs["required"] = True
        if has_default and f.default is not None and "default" not in option.help:
            kwargs["help"] += " (default: %(default)s)"
        parser.add_argument(flag_of(f.name, option), **kwargs)


def config_from_args(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """`cls` from the options `add_config_options` added (one dest per field), plus `fixed` fields
    (those set by other options)."""
    names = [f.name for f in dataclasses.fields(cls) if hasattr(args, f.name) and f.name not in fixed]
    return cls(**{name: getattr(args, name) for name in names}, **fixed)

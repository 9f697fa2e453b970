"""The one lazy import of the `wit` command: a subcommand's handler named by module and function.

Building the parser (`wit --help`, a mistyped option) must not import Ray or torch, which take
seconds. So each package's `cli.py` holds only its options and help, and names its handlers here,
`run=command("pipeline.commands", "match")`; the commands module it names imports its stage at
module level, and is imported on the first call. Ground module: imports nothing of ours.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Command:
    """A handler `module.function(args) -> int`, imported when first called (`args.run(args)`)."""

    module: str
    function: str

    def resolve(self) -> Callable[..., Any]:
        handler = getattr(importlib.import_module(self.module), self.function, None)
        if not callable(handler):        # a typo in the name: say which, not "NoneType is not callable"
            raise AttributeError(f"{self.module} has no command {self.function!r}")
        return handler

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"command({self.module!r}, {self.function!r})"


def command(module: str, function: str) -> Command:
    return Command(module, function)

"""Settings defined once: a config field declares its type, default, help, range and choices;
the command-line options and the API's argument checks are generated from it.

    @dataclass
    class ScoreConfig:
        batch_size: int = setting(4, "Snippets per backbone forward pass.", minimum=1)

`options(ScoreConfig)` decorates a click command with `--batch-size` (type, range, help and
`[default: 4]` from the field); `given(ScoreConfig, kwargs)` keeps what the user typed, so a
preset or an API default is overridden only by what was asked for; `check(config)` answers a
wrong type, range or choice with a ConfigError naming the setting and what it accepts, for the
Python API as for the command line. Choices may be a function (a registry's names): they are
read when a command line is parsed or its help printed, so a phase, loss or backbone registered
by a plugin reaches `--help` and is accepted.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from vad.errors import ConfigError, VadError

META = "vad.setting"
MISSING = dataclasses.MISSING


@dataclass(frozen=True)
class Setting:
    help: str
    flag: str | None = None  # the option's name; default: --<field-name-with-dashes>
    negate: bool = False  # a bool that is on by default: the flag (--no-<name>) turns it off
    choices: tuple | Callable[[], Iterable] | None = None  # values, or a function giving them (a registry's names)
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False  # minimum itself excluded
    max_open: bool = False
    path: str | None = None  # "file" or "dir": what a path must be when it exists
    parse: Callable[[str], Any] | None = None  # command-line text -> value (e.g. "I/N", a comma list)
    metavar: str | None = None
    default_text: str | None = None  # how --help shows the default, where str(default) would mislead
    cli: bool = True  # False: a setting of the Python API only

    def choice_values(self) -> tuple:
        if self.choices is None:
            return ()
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def option_name(self, name: str) -> str:
        if self.flag:
            return self.flag
        return "--no-" + name.replace("_", "-") if self.negate else "--" + name.replace("_", "-")

    def accepts(self) -> str:
        """What the setting accepts, in words: for error messages."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choice_values()))
        low = "" if self.minimum is None else f"{'>' if self.min_open else '>='} {self.minimum:g}"
        high = "" if self.maximum is None else f"{'<' if self.max_open else '<='} {self.maximum:g}"
        return " and ".join(part for part in (low, high) if part)


def setting(default: Any = MISSING, help: str = "", *, default_factory: Callable[[], Any] | Any = MISSING, **declared) -> Any:
    """A dataclass field with its Setting; `declared` are Setting's fields (minimum, choices, ...)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={META: Setting(help, **declared)})


def fields_of(cls) -> list[tuple[dataclasses.Field, Setting, Any]]:
    """(field, Setting, resolved type) of every declared setting of a config class."""
    hints = typing.get_type_hints(cls)
    return [(f, f.metadata[META], hints[f.name]) for f in dataclasses.fields(cls) if META in f.metadata]


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def default_text(f: dataclasses.Field, declared: Setting) -> str | None:
    """The default as --help shows it; None: no default to show (a required value)."""
    if declared.default_text is not None:
        return declared.default_text
    value = default_of(f)
    if value is MISSING:
        return None
    if declared.negate:  # the flag turns the setting off: say which state is the default
        return f"{f.name.replace('_', ' ')} {'on' if value else 'off'}"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    return str(value)


# -- checking values ------------------------------------------------------------------------------
def _type_name(kind: Any) -> str:
    if kind is type(None):
        return "None"
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    if typing.get_origin(kind) in (tuple, list):
        return f"a {typing.get_origin(kind).__name__}"
    return {Path: "a path", float: "a number", int: "an integer", str: "text", bool: "True or False"}.get(kind, getattr(kind, "__name__", str(kind)))


def _matches(value: Any, kind: Any) -> bool:
    """Whether `value` is of the declared type; int passes for float, str for Path, not bool for numbers."""
    if kind is Any or kind is object:
        return True
    if kind is typing.TextIO:  # a protocol in all but name: io.StringIO and friends do not subclass it
        return hasattr(value, "write")
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, k) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if origin in (tuple, list):
        if not isinstance(value, tuple | list):
            return False
        args = typing.get_args(kind)
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):  # list[T], tuple[T, ...]: any length
            return not args or all(_matches(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(_matches(v, k) for v, k in zip(value, args)))
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is Path:
        return isinstance(value, str | Path)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True


def _core(kind: Any) -> Any:
    """X of `X | None`."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [k for k in typing.get_args(kind) if k is not type(None)]
        return rest[0] if len(rest) == 1 else kind
    return kind


def _is_sequence(kind: Any) -> bool:
    return typing.get_origin(_core(kind)) in (tuple, list)


def check_value(name: str, declared: Setting, kind: Any, value: Any, what: str = "") -> None:
    """ConfigError when `value` is not what setting `name` accepts."""
    where = f"{what}: " if what else ""
    label = f"setting {name!r}" + (f" ({declared.option_name(name)})" if declared.cli else "")
    if not _matches(value, kind):
        raise ConfigError(f"{where}{label} takes {_type_name(kind)}, got {value!r} ({type(value).__name__})")
    if value is None:
        return
    if declared.choices is not None:
        allowed = declared.choice_values()
        for item in value if _is_sequence(kind) else (value,):
            if item not in allowed:
                raise ConfigError(f"{where}{label}: {item!r} is not {declared.accepts()}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low_bad = declared.minimum is not None and (value <= declared.minimum if declared.min_open else value < declared.minimum)
        high_bad = declared.maximum is not None and (value >= declared.maximum if declared.max_open else value > declared.maximum)
        if low_bad or high_bad:
            raise ConfigError(f"{where}{label} must be {declared.accepts()}, got {value!r}")
    if declared.path is not None and isinstance(value, str | Path):
        path = Path(value).expanduser()
        if declared.path == "file" and path.is_dir():
            raise ConfigError(f"{where}{label}: {value} is a folder; a file is expected")
        if declared.path == "dir" and path.exists() and not path.is_dir():
            raise ConfigError(f"{where}{label}: {value} is a file; a folder is expected")


def check(config: Any, what: str = "") -> Any:
    """Check every declared setting of a config instance (nested configs too); returns it."""
    for f, declared, kind in fields_of(type(config)):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check(value, what)
        else:
            check_value(f.name, declared, kind, value, what)
    return config


def build(cls, values: dict, what: str) -> Any:
    """cls(**values) checked: an unknown name, a wrong type, range or choice is a ConfigError."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:  # a private field (tests' hooks) is accepted, not offered
        public = sorted(name for name in names if not name.startswith("_"))
        raise ConfigError(f"{what}: no setting {', '.join(map(repr, unknown))}; the settings are {', '.join(public)}")
    declared = {f.name: (d, kind) for f, d, kind in fields_of(cls)}
    for name, value in values.items():
        if name in declared:
            check_value(name, *declared[name], value, what)
    return cls(**values)


# -- the command line -----------------------------------------------------------------------------
class Choices(click.ParamType):
    """click.Choice over values read when used: a registry's names at parse and --help time.
    `separator`: the option takes a list, e.g. `bst,ham,as`."""

    def __init__(self, declared: Setting, separator: str | None = None):
        self.declared, self.separator = declared, separator
        self.name = "choice"

    def _values(self) -> list[str]:
        return [str(v) for v in self.declared.choice_values()]

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        joined = "|".join(self._values())
        return f"[{joined}][{self.separator}...]" if self.separator else f"[{joined}]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        texts = [part.strip() for part in value.split(self.separator) if part.strip()] if self.separator else [value]
        values = list(self.declared.choice_values())
        by_text = {str(v): v for v in values}
        for text in texts:
            if text not in by_text:
                self.fail(f"{text!r} is not one of {', '.join(by_text)}", param, ctx)
        chosen = [by_text[t] for t in texts]
        return tuple(chosen) if self.separator else chosen[0]


def _click_type(declared: Setting, kind: Any):
    core = _core(kind)
    if declared.choices is not None:
        return Choices(declared, separator="," if _is_sequence(kind) else None)
    if declared.parse is not None:
        return click.STRING
    if core is Path:
        return click.Path(path_type=Path, dir_okay=declared.path != "file", file_okay=declared.path != "dir")
    if core in (int, float):
        number = click.IntRange if core is int else click.FloatRange
        if declared.minimum is None and declared.maximum is None:
            return click.INT if core is int else click.FLOAT
        return number(declared.minimum, declared.maximum, min_open=declared.min_open, max_open=declared.max_open)
    return click.STRING


def option_for(name: str, declared: Setting, kind: Any, f: dataclasses.Field) -> click.Option:
    shown = default_text(f, declared)
    help_text = declared.help + (f"  [default: {shown}]" if shown is not None else "")
    flag = declared.option_name(name)
    if kind is bool or declared.negate:
        return click.Option([flag, name], is_flag=True, default=False, help=help_text,
                            callback=(lambda ctx, param, value: not value) if declared.negate else None)
    callback = None
    if declared.parse is not None:
        parse = declared.parse

        def callback(ctx, param, value):
            if value is None:
                return None
            try:
                return parse(value)
            except VadError as exc:
                raise click.BadParameter(str(exc), ctx, param) from None

    return click.Option([flag, name], type=_click_type(declared, kind), default=None, help=help_text, metavar=declared.metavar,
                        callback=callback)


def options(cls, *, skip: Iterable[str] = ()) -> Callable[[Callable], Callable]:
    """Decorator: a click option for every command-line setting of `cls` (nested configs too)."""
    skipped = set(skip)

    def params_of(config_cls) -> list[click.Option]:
        params = []
        for f, declared, kind in fields_of(config_cls):
            if f.name in skipped or not declared.cli:
                continue
            if dataclasses.is_dataclass(kind):
                params.extend(params_of(kind))
            else:
                params.append(option_for(f.name, declared, kind, f))
        return params

    def decorate(command: Callable) -> Callable:
        # click.option appends to __click_params__ and reverses at the end: add ours in reverse
        # so that --help lists them in the order the fields are written.
        target = command
        for param in reversed(params_of(cls)):
            target.__dict__.setdefault("__click_params__", []).append(param)
        return target

    return decorate


def given(cls, values: dict) -> dict:
    """Of a command's keyword arguments, the settings of `cls` the user typed (a default is not
    passed on, so that presets and the config's own defaults apply); nested configs become dicts."""
    ctx = click.get_current_context(silent=True)

    def typed(name: str) -> bool:
        return ctx is None or ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)

    def collect(config_cls) -> dict:
        out = {}
        for f, declared, kind in fields_of(config_cls):
            if dataclasses.is_dataclass(kind):
                nested = collect(kind)
                if nested:
                    out[f.name] = nested
            elif f.name in values and declared.cli and typed(f.name):
                out[f.name] = values[f.name]
        return out

    return collect(cls)

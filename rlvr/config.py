"""One config path for every command: YAML file -> dataclass -> `--key.sub=value` overrides.

A config is a (nested) dataclass. `load_config(Cls, "file.yaml", ["--optim.lr=1e-5"])` reads the
file, applies the overrides and checks every key and type against the dataclass. Unknown keys and
wrong types are errors that name the key, where it came from and the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the config dataclass."""


class _Override(str):
    """A value typed on the command line, kept as text until the target type is known.

    Text is parsed as YAML for non-string fields (numbers, booleans, lists, null), so
    `--name=123` stays the string "123" for a `str` field and `--lr=1e-5` is a float.
    """


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """Turn `["--a.b=1", "--c", "x"]` into a nested dict of `_Override` strings."""
    nested: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument '{arg}': overrides look like --key.sub=value")
        body = arg[2:]
        if "=" in body:
            key, value = body.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            key, value = body, args[i + 1]
            i += 1
        else:
            raise ConfigError(f"override '{arg}' has no value: write --{body}=VALUE")
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{arg}' has an empty key")
        node = nested
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"override '{arg}' sets a field inside '{part}', which is also set to a value"
                )
            node = child
        node[parts[-1]] = _Override(value)
        i += 1
    return nested


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge `update` into a copy of `base` (update wins)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build `cls` from a YAML file (optional) and command-line overrides."""
    data = read_yaml(path) if path is not None else {}
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data, source=str(path) if path else "overrides")


def with_overrides(cfg: T, overrides: Sequence[str], source: str = "overrides") -> T:
    """`cfg` with `--key.sub=value` overrides applied on top, rebuilt from its fields (so validated
    again): how a composed config takes a user's overrides last."""
    return from_dict(type(cfg), merge(to_dict(cfg), parse_overrides(overrides)), source=source)


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "config", prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking every key and value type."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'{_suggest(key, fields, prefix)}")
        factory = fields[key].default_factory
        if isinstance(value, Mapping) and factory is not dataclasses.MISSING:
            # a partial section keeps the field's own default values (e.g. a preset's StageFile path),
            # not those of a bare instance of its class
            default = factory()
            if dataclasses.is_dataclass(default):
                value = merge(to_dict(default), value)
        kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}", source)
    try:
        return cls(**kwargs)
    except TypeError as err:
        missing = [n for n, f in fields.items() if n not in kwargs and _is_required(f)]
        if missing:
            raise ConfigError(
                f"{source}: missing required key(s) {', '.join(prefix + m for m in missing)}"
            ) from err
        raise
    except ValueError as err:
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'}: {err}") from err


def to_dict(cfg: Any) -> Any:
    """Plain YAML-able data (dicts, lists, str/int/float/bool/None) from a config dataclass."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, list | tuple):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(dump_yaml(cfg))


def _is_required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _suggest(key: str, valid: Mapping[str, Any], prefix: str) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    if close:
        return f"; did you mean '{prefix}{close[0]}'?"
    return f"; valid keys here: {', '.join(prefix + k for k in valid)}"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against type `tp`, converting command-line text where that is unambiguous."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    typed = value if isinstance(value, _Override) else None  # the command-line text, for messages

    def bad(expected: str | None = None) -> ConfigError:
        if typed is not None:
            return ConfigError(
                f"--{key}={typed}: key '{key}' expects {expected or _type_name(tp)}, got {typed}"
            )
        got = f"{value!r} ({type(value).__name__})"
        return ConfigError(f"{source}: key '{key}' expects {expected or _type_name(tp)}, got {got}")

    if tp is Any:
        return yaml.safe_load(value) if isinstance(value, _Override) else value
    if origin in (Union, types.UnionType):
        if (
            isinstance(value, _Override)
            and value.strip().lower() in ("null", "none", "~")
            and type(None) in args
        ):
            return None
        if value is None and type(None) in args:
            return None
        for arm in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arm, key, source)
            except ConfigError:
                continue
        raise bad()
    if isinstance(value, _Override) and tp is not str and tp is not Path:
        if origin is Literal and value in args:
            return str(value)
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--{key}: cannot parse value: {err}") from err
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, source=source, prefix=f"{key}.")
    if origin is Literal:
        if value in args:
            return value
        raise bad(f"one of {', '.join(repr(a) for a in args)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad()
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise bad()
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise bad()
    if origin in (list, Sequence, tuple):
        if isinstance(value, str):
            raise bad(f"a list ({_type_name(tp)}); write [a, b] on the command line")
        if not isinstance(value, list | tuple):
            raise bad()
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise bad(f"{len(args)} items ({_type_name(tp)})")
            return tuple(
                _coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise bad()
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, val_tp, f"{key}.{k}", source) for k, v in value.items()}
    if tp is dict or tp is list:
        if isinstance(value, tp):
            return value
        raise bad()
    raise ConfigError(f"{source}: key '{key}' has a type rlvr cannot read from YAML: {_type_name(tp)}")

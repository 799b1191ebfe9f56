"""Configuration files: one strict pydantic base and one TOML loader for every section (the plan,
sensors, panel, caller, ...), so each file's mistakes come back the same way: every problem at
once, by field path, in a sentence an installer understands, as a `ConfigError` (never a
traceback)."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ConfigError


class StrictConfig(BaseModel):
    # strict: "yes" is not true, "20" is not 20 — an installer's typo must not pass as intent;
    # an unknown key is a typing error, not a setting to ignore
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


M = TypeVar("M", bound=BaseModel)


def read_toml(path: Path | str, error: type[ConfigError] = ConfigError,
              file_name: str = "the .toml file") -> dict[str, Any]:
    """The file's TOML as a dict, or `error` with one sentence saying why it cannot be read;
    `file_name` is what to give instead when `path` is a folder."""
    path = Path(path)

    def fail(sentence: str) -> ConfigError:
        return error([("(file)", sentence)], str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail(f"{path} does not exist") from None
    except IsADirectoryError:
        example = path / file_name if file_name.endswith(".toml") and " " not in file_name else file_name
        raise fail(f"{path} is a folder, not a configuration file; give {example}") from None
    except PermissionError:
        raise fail(f"{path} cannot be read by this user (check its owner and mode)") from None
    except OSError as e:
        raise fail(f"{path} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise fail(f"{path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise fail(f"{path} is not valid TOML: {e}") from None


def refuse(command: str, e: Exception) -> int:
    """A configuration mistake, for a command line: one line per problem on stderr (one sentence
    when the file itself is the problem), exit code 2, never a traceback."""
    import sys
    if isinstance(e, ConfigError) and [where for where, _ in e.problems] == ["(file)"]:
        print(f"timeout-hub {command}: {e.problems[0][1]}.", file=sys.stderr)
    elif isinstance(e, ConfigError):
        for where, sentence in e.problems:
            print(f"timeout-hub {command}: {e.source}: {where}: {sentence}", file=sys.stderr)
    else:
        print(f"timeout-hub {command}: {e}", file=sys.stderr)
    return 2


def problems_of(e: ValidationError, whole: str = "(file)") -> list[tuple[str, str]]:
    """One (field path, sentence) per problem pydantic found; `whole` names a check of the whole
    file (a cross-check between sections)."""
    problems: list[tuple[str, str]] = []
    for err in e.errors():
        where = field_path(err["loc"]) or whole
        for part in sentence(dict(err)).split("\n"):
            problems.append((where, part))
    return problems


def validate(model: type[M], data: dict[str, Any], source: str,
             error: type[ConfigError] = ConfigError, context: dict[str, Any] | None = None) -> M:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as e:
        raise error(problems_of(e), source) from None


def load_config(path: Path | str, model: type[M], error: type[ConfigError] = ConfigError,
                context: dict[str, Any] | None = None) -> M:
    """Read and validate one configuration file."""
    return validate(model, read_toml(path, error), str(path), error, context)


_FRIENDLY = {
    "extra_forbidden": "is not a known setting (a typing error?)",
    "missing": "is missing",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "date_type": "must be a date like 2026-12-01",
    "date_parsing": "must be a date like 2026-12-01",
    "date_from_datetime_parsing": "must be a date like 2026-12-01",
    "list_type": "must be a list [ ... ]",
    "dict_type": "must be a table [ ... ]",
    "string_type": "must be text in quotes",
    "model_type": "must be a table [ ... ]",
}


def sentence(err: dict[str, Any]) -> str:
    t, ctx = err["type"], err.get("ctx", {})
    if t in _FRIENDLY:
        return _FRIENDLY[t]
    if t == "too_long":
        return (f"has {ctx.get('actual_length')} entries; at most {ctx.get('max_length')} are allowed")
    if t == "too_short":
        return f"needs at least {ctx.get('min_length')} entr{'y' if ctx.get('min_length') == 1 else 'ies'}"
    if t == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if t == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if t == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if t == "string_pattern_mismatch":
        return "has characters that are not allowed (use a-z, 0-9 and '-')"
    if t == "string_too_long":
        return f"is too long (at most {ctx.get('max_length')} characters)"
    if t == "string_too_short":
        return "must not be empty"
    if t == "value_error":
        return str(ctx.get("error", err["msg"]))
    return err["msg"]


def field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p + 1}]")  # installers count from 1
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)



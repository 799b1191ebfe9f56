"""Questions and answers: from the installer at the terminal, or from an answers file (TOML) for
tests and repeat installs. Each answer has a name (`contacts.a`); a bad one is refused with one
sentence: asked again at the terminal, or the run stops with exit 2 naming it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class BadAnswer(Exception):
    """An answers-file answer that is missing or not valid: the run stops (exit 2)."""

    def __init__(self, name: str, sentence: str):
        super().__init__(f"answer {name}: {sentence}")
        self.name = name


class Asker:
    def __init__(self, answers: dict[str, Any] | None, lang: str,
                 read: Callable[[str], str] = input, say: Callable[[str], None] = print):
        self.answers, self.lang, self.read, self.say = answers, lang, read, say

    def given(self, name: str) -> Any:
        node: Any = self.answers
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def ask(self, name: str, question: str, parse: Callable[[Any], T], default: Any = None) -> T:
        """`parse` turns the raw answer into a value or raises ValueError with one sentence."""
        if self.answers is not None:
            raw = self.given(name)
            if raw is None:
                raw = default
            if raw is None:
                raise BadAnswer(name, "missing" if self.lang == "en" else "ontbreekt")
            try:
                return parse(raw)
            except ValueError as e:
                raise BadAnswer(name, str(e)) from None
        while True:
            hint = f" [{default}]" if default is not None else ""
            raw = self.read(f"{question}{hint}: ").strip()
            if not raw and default is not None:
                raw = default
            try:
                return parse(raw)
            except ValueError as e:
                self.say(f"  {e}")

"""The wizard's memory between runs: DIR/provision-state.json records each finished step and what
it found, so a rerun continues at the first unfinished step. It holds no phone numbers (those are
only in caller.toml) and no advertisers other than the paired tags (R4)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "provision-state.json"


@dataclass
class Progress:
    path: Path
    done: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)      # household, port: what later steps need
    results: dict[str, str] = field(default_factory=dict)    # step -> one line for the summary

    @classmethod
    def load(cls, directory: Path) -> Progress:
        path = directory / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} cannot be read ({e}); remove it to start the wizard again") from None
        return cls(path, list(data.get("done", [])), dict(data.get("facts", {})),
                   dict(data.get("results", {})))

    def finish(self, step: str, result: str) -> None:
        """Record a finished step at once (atomically): an interrupted run loses at most the
        step it was in."""
        if step not in self.done:
            self.done.append(step)
        self.results[step] = result
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"done": self.done, "facts": self.facts, "results": self.results}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

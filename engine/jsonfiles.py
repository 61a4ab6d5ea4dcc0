"""Reading back the JSON files sigtrade wrote (run folders, model folders, saved backtests).

Such a file can be missing, cut short by a crash, overwritten or not text at all; each case
is an error of the caller's kind that names the file and says how to get a good one back,
never a ``JSONDecodeError`` or ``UnicodeDecodeError`` from deep inside a command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import DataError


def read_json(path: str | Path, *, fix: str, error: type[Exception] = DataError, expect: type = object) -> Any:
    """The parsed content of *path*; *fix* is what the message tells the user to do (e.g. "re-export it").

    *error* is the error class to raise (a sigtrade error, or ``models.errors.ModelContractError``); *expect*
    (``dict`` or ``list``) also refuses a file of valid JSON of another shape.
    """
    p = Path(path)
    try:
        blob = p.read_bytes()
    except FileNotFoundError:
        raise error(f"{p} is missing; {fix}") from None
    except OSError as exc:
        raise error(f"{p} cannot be read ({exc.strerror}); {fix}") from None
    try:
        data = json.loads(blob.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{p} is not UTF-8 text (byte {exc.start}): not a file sigtrade wrote; {fix}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{p} is not valid JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    if not isinstance(data, expect):
        raise error(f"{p} holds a JSON {type(data).__name__}, expected a JSON "
                    f"{'object' if expect is dict else expect.__name__}; {fix}")
    return data

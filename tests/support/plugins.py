"""The README's example plugin rule, as the README shows it: tests register it under names
of their own."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_rule() -> str:
    """The README's example rule (the python block that registers "covariance"), as it is."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    [rule] = [b for b in blocks if '@register_rule("covariance")' in b]
    return str(rule)


RULE = readme_rule()

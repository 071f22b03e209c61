"""`python -m tests.support.tap <sweep arguments>`: the `sweep` command, with each table's
raw part rows copied to `$SWEEP_TEST_RAW/<table>.parquet` just before the sweep compacts
them (the real compaction runs right after). A finished sweep's tables keep one row per key,
so a trial run twice under its own id is visible only here."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq


def install() -> None:
    """Wrap `sweep.runner`'s compaction with the copy."""
    import sweep.runner as runner
    from sweep.store import TABLES
    from tests.support.driver import raw_table
    from tests.support.sweeps import RAW

    compact = runner.compact

    def copy_then_compact(sweep_dir: str | Path) -> None:
        out = Path(os.environ[RAW])
        out.mkdir(parents=True, exist_ok=True)
        for table in TABLES:
            pq.write_table(raw_table(sweep_dir, table), out / f"{table}.parquet")
        compact(sweep_dir)

    runner.compact = copy_then_compact


if __name__ == "__main__":
    install()
    from sweep.cli import main

    main()

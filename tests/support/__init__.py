"""The shared test harness: real sweeps (`sweeps`), a driver to start, watch, kill and resume
them (`driver`, with `tap` for the rows before compaction), and hand-built sweep folders
(`folders`). The session-scoped real sweeps that tests only read are fixtures in
`tests/conftest.py`."""

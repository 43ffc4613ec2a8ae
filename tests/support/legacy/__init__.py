"""The ingest normalizers as they were before issue 19 (commit 64ba1b4), kept verbatim so a
test can fill the streams "the old way" and check that ``renormalize`` repairs them."""

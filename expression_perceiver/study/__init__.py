"""Masking studies: study files, cells, executors and reports."""

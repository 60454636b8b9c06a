"""The ``lmcot`` command: the verb table (``verbs``), the entry point (``main``), one module per
verb, the error boundary (``errors``) and the Trainer verbs' LightningCLI (``trainer``)."""

from lm_guided_cot.cli.main import main

__all__ = ["main"]

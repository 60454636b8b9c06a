"""The ``lmcot`` command: the verb table (``main``), each verb's module, the error boundary
(``errors``) and the Trainer verbs' LightningCLI (``trainer``)."""

from lm_guided_cot.cli.main import main

__all__ = ["main"]

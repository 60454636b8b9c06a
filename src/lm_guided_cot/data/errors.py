"""The error every reader raises for bad input: it names the file, the record and the field."""

from __future__ import annotations

from lm_guided_cot.errors import InputError


class DataFormatError(InputError):
    """A record that cannot be read as a multi-hop QA example.

    ``source`` is the file (or hub dataset) it came from, ``record`` its 0-based index,
    ``line`` the 1-based line it starts on (when the input is a text file) and ``field``
    the offending field, in the ``context[3][1]`` style.
    """

    def __init__(
        self,
        source: str,
        record: int | None,
        field: str | None,
        problem: str,
        line: int | None = None,
    ) -> None:
        self.source = source
        self.record = record
        self.field = field
        self.problem = problem
        self.line = line
        where = [str(source)]
        if record is not None:
            where.append(f"record {record}" + (f" (line {line})" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(": ".join([*where, problem]))

    def __reduce__(self):
        # Keep the structured fields when the error crosses a process boundary (datasets workers).
        return (type(self), (self.source, self.record, self.field, self.problem, self.line))

"""CSV exports that spreadsheets open as they are: UTF-8 with a byte-order mark, text cells never formulas."""

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

BOM = "\ufeff"  # so that Excel reads the file as UTF-8 and shows Chinese names as they are
MEDIA_TYPE = "text/csv; charset=utf-8"


def text_cell(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def attachment(filename: str) -> dict[str, str]:
    """The headers of a download saved under `filename`."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


async def streamed(header: list[str], batches: AsyncIterator[list[list[Any]]]) -> AsyncIterator[bytes]:
    """A CSV file (the BOM, the header, then each batch of rows as it comes), never held whole."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    yield (BOM + out.getvalue()).encode()
    async for rows in batches:
        out.seek(0)
        out.truncate()
        writer.writerows(rows)
        yield out.getvalue().encode()

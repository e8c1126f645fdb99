"""CSV exports that spreadsheets open as they are: UTF-8 with a byte-order mark, text cells never formulas."""

BOM = "\ufeff"  # so that Excel reads the file as UTF-8 and shows Chinese names as they are
MEDIA_TYPE = "text/csv; charset=utf-8"


def text_cell(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def attachment(filename: str) -> dict[str, str]:
    """The headers of a download saved under `filename`."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}

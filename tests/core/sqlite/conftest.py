from collections.abc import AsyncIterator

import pytest

from tests.core.sqlite.tables import CONTRACT_TABLES


async def _drop_contract_tables() -> None:
    for table in reversed(CONTRACT_TABLES):
        await table.alter().drop_table(if_exists=True)


@pytest.fixture
async def contract_tables() -> AsyncIterator[None]:
    """The contract tables, empty, on the engine the suite runs on; dropped after the test."""
    await _drop_contract_tables()  # a run that was cut short may have left them
    for table in CONTRACT_TABLES:
        await table.create_table()
    yield
    await _drop_contract_tables()

"""The rotating member code: format, rotation, one use per code, and guessing that goes nowhere."""

import asyncio
import random
import time

from hypothesis import given
from hypothesis import strategies as st

from backend.members.code import NUMBER_SPACE, STEP_SECONDS, MemberCodes
from tests.conftest import member_login, staff_login

CODES = MemberCodes("a-test-secret-key-that-is-long-enough-000")
LOOKUP = "/api/v1/cashier/member-lookups"


@given(member_id=st.integers(1, NUMBER_SPACE - 1), now=st.integers(1_600_000_000, 2_200_000_000))
def test_codes_are_numeric_unmistakable_and_name_their_member(member_id, now):
    code, seconds_left = CODES.code_for(member_id, now=now)
    assert len(code) == 18 and code.isdigit() and code.startswith("89")
    assert not any(code.startswith(str(p)) for p in (*range(10, 16), *range(25, 31)))  # payment code prefixes
    assert 1 <= seconds_left <= STEP_SECONDS
    assert CODES.member_of(code) == member_id
    assert CODES.matching_step(code, member_id, now=now) == now // STEP_SECONDS
    assert CODES.matching_step(code, member_id, now=now + STEP_SECONDS) == now // STEP_SECONDS  # the step after
    assert CODES.matching_step(code, member_id, now=now + 2 * STEP_SECONDS) is None


@given(first=st.integers(1, NUMBER_SPACE - 1), second=st.integers(1, NUMBER_SPACE - 1))
def test_member_numbers_are_a_bijection(first, second):
    a, _ = CODES.code_for(first, now=1_700_000_000)
    b, _ = CODES.code_for(second, now=1_700_000_000)
    assert (a[2:12] == b[2:12]) == (first == second)


def test_member_numbers_do_not_show_member_ids():
    numbers = [CODES.code_for(member_id, now=1_700_000_000)[0][2:12] for member_id in range(1, 2001)]
    assert not any(number == f"{member_id:010d}" for member_id, number in enumerate(numbers, start=1))
    assert len(set(numbers)) == 2000


def test_codes_rotate_and_differ_between_secrets():
    now = 1_700_000_000
    assert CODES.code_for(7, now=now)[0] != CODES.code_for(7, now=now + STEP_SECONDS)[0]
    assert (
        CODES.code_for(7, now=now)[0] != MemberCodes("another-secret-key-of-enough-length-00").code_for(7, now=now)[0]
    )


async def member_code(client, shopper) -> str:
    response = await client.get("/api/v1/me/member-code", headers=shopper["headers"])
    assert response.status_code == 200 and "no-store" in response.headers["cache-control"]
    assert 1 <= response.json()["expiresInSeconds"] <= STEP_SECONDS
    return response.json()["code"]


async def test_the_till_identifies_the_member_once_per_code(client, demo, settings):
    shopper = await member_login(client)
    cashier = await staff_login(client, "cashier1")
    code = await member_code(client, shopper)
    found = await client.post(LOOKUP, json={"memberCode": code, "tillId": "T1"}, headers=cashier)
    assert found.status_code == 200, found.text
    assert found.json() == {
        "memberId": shopper["member"]["id"],
        "nickname": "",
        "phoneMasked": None,
        "pointsBalance": 0,
    }
    replay = await client.post(LOOKUP, json={"memberCode": code, "tillId": "T1"}, headers=cashier)
    assert replay.status_code == 409 and replay.json()["code"] == "members.code_used"
    other_till = await client.post(
        LOOKUP, json={"memberCode": code, "tillId": "T2"}, headers=await staff_login(client, "cashier2")
    )
    assert other_till.status_code == 409


async def test_the_previous_step_is_accepted_once_and_older_ones_never(client, demo, settings):
    shopper = await member_login(client)
    cashier = await staff_login(client, "cashier1")
    if STEP_SECONDS - time.time() % STEP_SECONDS < 2:  # stay inside one step for the whole test
        await asyncio.sleep(2)
    codes, member_id, now = MemberCodes(settings.secret_key), shopper["member"]["id"], time.time()
    previous, _ = codes.code_for(member_id, now=now - STEP_SECONDS)
    older, _ = codes.code_for(member_id, now=now - 3 * STEP_SECONDS)
    assert (await client.post(LOOKUP, json={"memberCode": older}, headers=cashier)).status_code == 404
    assert (await client.post(LOOKUP, json={"memberCode": previous}, headers=cashier)).status_code == 200
    assert (await client.post(LOOKUP, json={"memberCode": previous}, headers=cashier)).status_code == 409


async def test_a_thousand_guesses_find_no_one_and_end_in_429(client, demo):
    members = [await member_login(client) for _ in range(3)]  # real members whose codes a guess could hit
    cashier = await staff_login(client, "cashier1")
    rng = random.Random(20261122)
    statuses = []
    for _ in range(1000):
        guess = "89" + "".join(rng.choice("0123456789") for _ in range(16))
        statuses.append(
            (await client.post(LOOKUP, json={"memberCode": guess, "tillId": "T9"}, headers=cashier)).status_code
        )
    assert 200 not in statuses
    assert statuses[:10] == [404] * 10 and set(statuses[10:]) == {429}
    refused = await client.post(LOOKUP, json={"memberCode": "89" + "0" * 16}, headers=cashier)
    assert refused.json()["code"] == "members.too_many_lookups" and int(refused.headers["retry-after"]) > 0
    # The guessing staff member is locked out at any till, even with a genuine code.
    genuine = await member_code(client, members[0])
    assert (await client.post(LOOKUP, json={"memberCode": genuine, "tillId": "T3"}, headers=cashier)).status_code == 429


async def test_lookups_need_a_staff_token_and_a_well_formed_code(client, demo):
    shopper = await member_login(client)
    code = await member_code(client, shopper)
    assert (await client.post(LOOKUP, json={"memberCode": code})).status_code == 401
    assert (await client.post(LOOKUP, json={"memberCode": code}, headers=shopper["headers"])).status_code == 403
    cashier = await staff_login(client, "cashier1")
    for body in (
        {"memberCode": code[:-1]},
        {"memberCode": "x" * 18},
        {"memberCode": int(code)},
        {},
        {"memberCode": code, "memberId": 1},
    ):
        response = await client.post(LOOKUP, json=body, headers=cashier)
        assert response.status_code == 422, body
    assert (await client.post(LOOKUP, json={"memberCode": code}, headers=cashier)).status_code == 200
    assert (await client.get("/api/v1/me/member-code")).status_code == 401

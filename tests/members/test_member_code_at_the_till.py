"""A member code the cashier looked up is good for one checkout at that till (staff, store, till) for 120 s;
every other till refuses it."""

import pytest

from backend.core.kv import MemoryKV
from backend.members import service as members
from backend.members.code import STEP_SECONDS, MemberCodes
from backend.members.errors import MemberCodeNotRecognised, MemberCodeUsed
from backend.members.tables import Member
from tests.cashier.test_till_checkout import ORDERS, payment_code
from tests.conftest import member_login, staff_login
from tests.members.test_member_code import LOOKUP, member_code


async def checkout(client, cashier, store_id: int, openid: str, key: str, code: str, till: str, **extra):
    return await client.post(
        ORDERS,
        headers=cashier,
        json={
            "storeId": store_id,
            "amountFen": 1000,
            "authCode": await payment_code(client, openid),
            "idempotencyKey": key,
            "memberCode": code,
            "tillId": till,
            **extra,
        },
    )


async def test_a_looked_up_code_checks_out_once_at_the_same_till(client, demo):
    openid = "oLookedUp00000000000000001"
    shopper = await member_login(client, openid=openid)
    cashier1 = await staff_login(client, "cashier1")
    code = await member_code(client, shopper)
    found = await client.post(
        LOOKUP, json={"memberCode": code, "tillId": "T1", "storeId": demo["S001"]}, headers=cashier1
    )
    assert found.status_code == 200, found.text
    paid = await checkout(client, cashier1, demo["S001"], openid, "looked-up-0001", code, "T1")
    assert paid.status_code == 201, paid.text
    assert (paid.json()["memberId"], paid.json()["status"]) == (shopper["member"]["id"], "paid")
    again = await checkout(client, cashier1, demo["S001"], openid, "looked-up-0002", code, "T1")
    assert (again.status_code, again.json()["code"]) == (409, "members.code_used")  # one checkout per lookup


async def test_a_cashier_of_one_store_may_leave_the_store_out_of_the_lookup(client, demo):
    openid = "oLookedUpNoStore000000001"
    shopper = await member_login(client, openid=openid)
    cashier1 = await staff_login(client, "cashier1")
    code = await member_code(client, shopper)
    assert (await client.post(LOOKUP, json={"memberCode": code, "tillId": "T1"}, headers=cashier1)).status_code == 200
    paid = await checkout(client, cashier1, demo["S001"], openid, "looked-up-0003", code, "T1")
    assert paid.status_code == 201, paid.text


async def test_every_other_till_refuses_a_looked_up_code(client, demo):
    openid = "oLookedUpElsewhere0000001"
    shopper = await member_login(client, openid=openid)
    cashier1 = await staff_login(client, "cashier1")
    code = await member_code(client, shopper)
    assert (await client.post(LOOKUP, json={"memberCode": code, "tillId": "T1"}, headers=cashier1)).status_code == 200
    other_till = await checkout(client, cashier1, demo["S001"], openid, "elsewhere-0001", code, "T2")
    assert (other_till.status_code, other_till.json()["code"]) == (409, "members.code_used")
    other_staff = await checkout(
        client, await staff_login(client, "cashier2"), demo["S002"], openid, "elsewhere-0002", code, "T1"
    )
    assert (other_staff.status_code, other_staff.json()["code"]) == (409, "members.code_used")
    other_store = await checkout(
        client, await staff_login(client, "hq"), demo["S003"], openid, "elsewhere-0003", code, "T1"
    )
    assert (other_store.status_code, other_store.json()["code"]) == (409, "members.code_used")
    # The refusals spent nothing: the till that looked the code up still checks out with it.
    assert (await checkout(client, cashier1, demo["S001"], openid, "elsewhere-0004", code, "T1")).status_code == 201


async def test_a_code_no_till_looked_up_is_taken_by_the_first_checkout(client, demo):
    openid = "oNeverLookedUp00000000001"
    shopper = await member_login(client, openid=openid)
    cashier1 = await staff_login(client, "cashier1")
    code = await member_code(client, shopper)
    assert (await checkout(client, cashier1, demo["S001"], openid, "first-sight-01", code, "T1")).status_code == 201
    looked = await client.post(LOOKUP, json={"memberCode": code, "tillId": "T1"}, headers=cashier1)
    assert (looked.status_code, looked.json()["code"]) == (409, "members.code_used")


@pytest.mark.parametrize("looked_up", [True, False])
async def test_a_checkout_refused_before_its_order_leaves_the_code_for_the_retry(client, demo, looked_up):
    """A mistyped payment code, an Alipay code or too many points: no order, so the code was not used."""
    openid = f"oRefusedRetry{int(looked_up)}00000000001"
    shopper = await member_login(client, openid=openid)
    cashier1 = await staff_login(client, "cashier1")
    code = await member_code(client, shopper)
    if looked_up:
        found = await client.post(
            LOOKUP, json={"memberCode": code, "tillId": "T1", "storeId": demo["S001"]}, headers=cashier1
        )
        assert found.status_code == 200, found.text
    key = f"refused-retry-{int(looked_up)}"
    for refused, expected in (
        ({"authCode": "123"}, "cashier.invalid_payment_code"),
        ({"authCode": "281234567890123456"}, "cashier.provider_unsupported"),
        ({"pointsToRedeem": 100_000}, "cashier.points_not_exact"),
        ({"pointsToRedeem": 500}, "points.insufficient"),
    ):
        answer = await checkout(client, cashier1, demo["S001"], openid, key, code, "T1", **refused)
        assert (answer.status_code // 100, answer.json()["code"]) == (4, expected), answer.text
    paid = await checkout(client, cashier1, demo["S001"], openid, key, code, "T1")
    assert paid.status_code == 201, paid.text
    assert (paid.json()["memberId"], paid.json()["status"]) == (shopper["member"]["id"], "paid")
    spent = await checkout(client, cashier1, demo["S001"], openid, f"{key}-again", code, "T1")
    assert (spent.status_code, spent.json()["code"]) == (409, "members.code_used")  # a paid checkout spends it


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("later", "accepted"), [(STEP_SECONDS * 3, True), (119, True), (121, False)])
async def test_the_pass_lives_two_minutes_past_the_lookup_then_the_code_is_too_old(demo, settings, later, accepted):
    """Past the code's own minute, only the pass the lookup left lets it through, for 120 s."""
    shopper_id = 4242
    codes, clock = MemberCodes(settings.secret_key), Clock(1_900_000_000.0 + 5)
    kv = MemoryKV(clock=clock)
    till = members.Till(staff_id=demo["cashier1"], store_id=demo["S001"], till="T1")
    code, _ = codes.code_for(shopper_id, now=clock.now)
    call = {"codes": codes, "kv": kv, "till": till, "failure_limit": 10, "window": 300}
    await Member.insert(Member(id=shopper_id, enrolled_via="miniprogram"))
    assert await members.look_up_member_code(code, now=clock.now, **call) == shopper_id
    clock.now += later
    if accepted:
        assert (await members.take_member_code(code, now=clock.now, **call)).member_id == shopper_id
    else:
        with pytest.raises((MemberCodeNotRecognised, MemberCodeUsed)):
            await members.take_member_code(code, now=clock.now, **call)


@pytest.mark.parametrize(("refused_after", "left"), [(10, 100), (115, None)])
async def test_a_pass_given_back_lives_no_longer_than_it_would_have(demo, settings, refused_after, left):
    """Taken 10 s after the lookup, refused `refused_after` seconds later: the pass comes back with what it had
    left (110 s less the wait), and not at all once it would have lapsed."""
    shopper_id = 4343
    codes, clock = MemberCodes(settings.secret_key), Clock(1_900_000_000.0 + 5)
    kv = MemoryKV(clock=clock)
    till = members.Till(staff_id=demo["cashier1"], store_id=demo["S001"], till="T1")
    code, _ = codes.code_for(shopper_id, now=clock.now)
    call = {"codes": codes, "kv": kv, "till": till, "failure_limit": 10, "window": 300}
    await Member.insert(Member(id=shopper_id, enrolled_via="miniprogram"))
    await members.look_up_member_code(code, now=clock.now, **call)
    clock.now += 10
    taken = await members.take_member_code(code, now=clock.now, **call)
    assert taken.token is not None  # the lookup's pass, not a first sighting
    clock.now += refused_after
    await members.give_back_member_code(taken, kv=kv, now=clock.now)
    lives = await kv.ttl(taken.key)
    assert lives == (pytest.approx(left, abs=0.01) if left is not None else None)

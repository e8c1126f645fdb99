"""One order core: every kind of order lists together, earns, qualifies a referral and is refunded the same way."""

import asyncio

import msgspec
import pytest

from backend.groupbuy.tables import Group
from backend.members.tables import Member
from backend.orders.schemas import OrderOut
from backend.orders.tables import Order
from backend.payments.policy import PaymentPolicy
from backend.payments.tables import PaymentRefund, PaymentTrade
from backend.points import service as points
from backend.points.tables import EntryKind, PointsEntry
from backend.referrals.tables import Referral, ReferralReward
from backend.sandbox import service as sandbox
from backend.sweeper import sweep_once
from tests.cashier.test_refunds import refund
from tests.cashier.test_till_checkout import FAST, payment_code, scan
from tests.conftest import member_login, staff_login
from tests.groupbuy.test_after_the_deadline import refund as refund_seat
from tests.groupbuy.test_seat_payments import confirm
from tests.groupbuy.test_seats import join, make_due, new_campaign, open_group, shoppers
from tests.payments.test_notifications import pay_at_store, post, sealed
from tests.referrals.test_referrals import login_with, share
from tests.referrals.test_referrals import new_campaign as new_referral_campaign

ME = "/api/v1/me/orders"


@pytest.fixture
async def app_client(make_client):
    async with make_client(**FAST, refund_query_interval_seconds=0.05, store_payment_query_interval_seconds=0.05) as c:
        yield c


async def a_seat_in_a_group_of_two(client, demo, leader, friend) -> tuple[dict, dict]:
    campaign = await new_campaign(client, demo, groupSize=2)
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    joined = (await join(client, friend, opened["group"]["id"], demo["S001"])).json()
    return opened, joined


async def test_the_member_sees_every_kind_of_order_together_newest_first(app_client, demo):
    client = app_client
    openid = "oEveryKind0000000000000001"
    shopper = await member_login(client, openid=openid)
    (friend,) = await shoppers(client, 1, prefix="oEveryKindFriend")
    cashier1 = await staff_login(client, "cashier1")
    till = (await scan(client, cashier1, demo["S001"], await payment_code(client, openid), "every-kind-01")).json()
    store_code = (await pay_at_store(client, demo["S002"], shopper, 2500)).json()
    seat, _ = await a_seat_in_a_group_of_two(client, demo, shopper, friend)

    page = (await client.get(ME, headers=shopper["headers"])).json()
    assert [(o["id"], o["kind"]) for o in page["items"]] == [
        (seat["order"]["id"], "groupbuy"),
        (store_code["orderId"], "store_code"),
        (till["id"], "till"),
    ]
    listed_seat, listed_code, listed_till = page["items"]
    assert (listed_till["status"], listed_till["paidFen"], listed_till["storeName"]) == ("paid", 1234, "Store S001")
    assert (listed_code["status"], listed_code["payableFen"], listed_code["paidFen"]) == ("paying", 2500, 0)
    # A seat shows its own words and fields beside the order's money.
    assert (listed_seat["status"], listed_seat["paymentStatus"], listed_seat["groupId"]) == (
        "pending_payment",
        "paying",
        seat["group"]["id"],
    )
    assert listed_seat["pickupStoreId"] == demo["S001"] and listed_seat["pickupCode"] is None
    assert all(o["lines"] is None for o in page["items"])  # a page lists orders, an order's detail its lines

    only_seats = (await client.get(ME, params={"kind": "groupbuy"}, headers=shopper["headers"])).json()["items"]
    assert [o["id"] for o in only_seats] == [seat["order"]["id"]]
    first = (await client.get(ME, params={"limit": 2}, headers=shopper["headers"])).json()
    rest = (await client.get(ME, params={"cursor": first["nextCursor"]}, headers=shopper["headers"])).json()
    assert [o["id"] for o in first["items"] + rest["items"]] == [o["id"] for o in page["items"]]
    assert rest["nextCursor"] is None

    detail = (await client.get(f"{ME}/{seat['order']['id']}", headers=shopper["headers"])).json()
    assert detail["lines"] == [
        {
            "id": detail["lines"][0]["id"],
            "skuId": None,
            "title": "金枕榴莲 (约 3 kg)",
            "quantity": 1,
            "unitPriceFen": 9900,
            "amountFen": 9900,
        }
    ]
    assert (await client.get(f"{ME}/{till['id']}", headers=shopper["headers"])).json()["lines"] == []
    # Another member's order, and one that does not exist, are not there.
    for order_id in (seat["order"]["id"], 999_999, 2**31 - 1):
        response = await client.get(f"{ME}/{order_id}", headers=friend["headers"])
        assert (response.status_code, response.json()["code"]) == (404, "orders.not_found")
    for order_id in (2**31, 2**62, 0):  # not an id at all
        response = await client.get(f"{ME}/{order_id}", headers=friend["headers"])
        assert (response.status_code, response.json()["code"]) == (422, "request.invalid")
    bad = await client.get(ME, params={"kind": "coupon"}, headers=shopper["headers"])
    assert (bad.status_code, bad.json()["code"]) == (422, "request.invalid")


async def test_a_seat_earns_when_its_group_succeeds_and_gives_it_back_when_refunded(app_client, demo):
    client = app_client
    leader, friend = await shoppers(client, 2, prefix="oSeatPoints")
    opened, joined = await a_seat_in_a_group_of_two(client, demo, leader, friend)
    await confirm(client, opened["order"]["outTradeNo"])
    assert await points.balance_of(leader["member"]["id"]) == (0, 0)  # paid, but the sale is not firm yet
    await confirm(client, joined["order"]["outTradeNo"])
    # 99 yuan at 2 points a yuan (the pickup store's rate), for each member, once the group succeeded.
    for member in (leader, friend):
        assert await points.balance_of(member["member"]["id"]) == (198, 0)
    # The seat whose payment made the group succeed earns too: its points are noted before it is paid.
    for member, seat in ((leader, opened), (friend, joined)):
        mine = (await client.get(f"{ME}/{seat['order']['id']}", headers=member["headers"])).json()
        assert (mine["pointsEarned"], mine["status"], mine["paidFen"]) == (198, "succeeded", 9900)
    assert await PointsEntry.count().where(PointsEntry.kind == EntryKind.earn) == 2

    cashier1 = await staff_login(client, "cashier1")
    assert (await refund_seat(client, cashier1, opened["order"]["id"], reason="坏了")).status_code == 201
    assert await points.balance_of(leader["member"]["id"]) == (0, 0)
    assert await points.balance_of(friend["member"]["id"]) == (198, 0)
    mine = (await client.get(f"{ME}/{opened['order']['id']}", headers=leader["headers"])).json()
    assert (mine["status"], mine["paymentStatus"], mine["refundedFen"]) == ("refunded", "refunded", 9900)


async def test_a_referee_whose_first_payment_is_a_seat_qualifies_the_referral(app_client, demo):
    client = app_client
    campaign = await new_referral_campaign(client)
    sharer = await member_login(client, openid="oSeatReferrer000000000001")
    link = await share(client, sharer, campaignId=campaign["id"])
    referee = await login_with(client, link["scene"], openid="oSeatReferee0000000000001")
    (friend,) = await shoppers(client, 1, prefix="oSeatRefFriend")
    mine = (await client.get("/api/v1/me/referrals", headers=sharer["headers"])).json()["items"]
    assert [m["rewardStatus"] for m in mine] == ["awaiting_first_order"]

    seat, _ = await a_seat_in_a_group_of_two(client, demo, referee, friend)
    await confirm(client, seat["order"]["outTradeNo"])
    referral = await Referral.select(Referral.status, Referral.first_order).first()
    assert referral == {"status": "qualified", "first_order": seat["order"]["id"]}
    mine = (await client.get("/api/v1/me/referrals", headers=sharer["headers"])).json()["items"]
    assert [m["rewardStatus"] for m in mine] == ["held"]
    assert await ReferralReward.count() == 2


async def test_concurrent_notifies_for_a_till_order_and_a_seat_of_one_payer_settle_each_once(
    make_client, demo, notifier, settings
):
    """The payer's till payment is still being asked about when WeChat Pay's notifications for it and for
    their seat arrive, each several times at once: every order is paid once, the payer is one member,
    and the till order earns once."""
    async with make_client(micropay_inline_wait_seconds=0.0) as client:
        openid = "oOnePayerTwoOrders0000001"
        shopper = await member_login(client, openid=openid)
        (friend,) = await shoppers(client, 1, prefix="oOnePayerFriend")
        cashier1 = await staff_login(client, "cashier1")
        code = await payment_code(client, openid, "password_then_success")
        till = (await scan(client, cashier1, demo["S001"], code, "one-payer-till-1", amount=5000)).json()
        assert till["status"] == "paying"
        seat, _ = await a_seat_in_a_group_of_two(client, demo, shopper, friend)
        await sandbox.pay_prepay(seat["order"]["outTradeNo"])  # the shopper pays for the seat in WeChat
        await sandbox.query_trade(till["outTradeNo"])  # ...and types their password at the till
        messages = [
            sealed(notifier, await sandbox.find_trade(number))
            for number in (till["outTradeNo"], seat["order"]["outTradeNo"])
        ]
        answers = await asyncio.gather(*(post(client, message) for message in messages for _ in range(4)))
        assert [a.status_code for a in answers] == [204] * 8
        rows = {row["id"]: row for row in await Order.select(Order.id, Order.status, Order.member, Order.points_earned)}
        assert rows[till["id"]] == {
            "id": till["id"],
            "status": "paid",
            "member": shopper["member"]["id"],
            "points_earned": 100,
        }
        assert rows[seat["order"]["id"]]["status"] == "paid"
        assert (await Group.select(Group.seats_paid).where(Group.id == seat["group"]["id"]).first()) == {
            "seats_paid": 1
        }
        assert await PaymentTrade.count().where(PaymentTrade.status == "paid") == 2
        assert await Member.count() == 2  # the payer was found, never enrolled a second time
        assert await points.balance_of(shopper["member"]["id"]) == (100, 0)
        assert await PointsEntry.count().where(PointsEntry.kind == EntryKind.earn) == 1


async def test_concurrent_partial_refunds_of_a_till_and_a_store_code_order_never_pass_what_was_paid(
    app_client, demo, sandbox_provider, settings
):
    client = app_client
    openid = "oManyRefunds0000000000001"
    shopper = await member_login(client, openid=openid)
    cashier1 = await staff_login(client, "cashier1")
    till = (
        await scan(client, cashier1, demo["S001"], await payment_code(client, openid), "many-refunds-1", amount=10_000)
    ).json()
    started = (await pay_at_store(client, demo["S001"], shopper, 10_000)).json()
    assert (await client.post(f"/api/v1/sandbox/payments/{started['outTradeNo']}/confirm")).status_code == 200
    assert await points.balance_of(shopper["member"]["id"]) == (400, 0)

    answers = await asyncio.gather(
        *(
            refund(client, cashier1, order_id, 2_500, f"many-{order_id}-{n:02d}")
            for n in range(7)
            for order_id in (till["id"], started["orderId"])
        )
    )
    accepted = [a for a in answers if a.status_code == 201]
    refused = {(a.status_code, a.json()["code"]) for a in answers if a.status_code != 201}
    assert len(accepted) == 8  # four quarters of each order
    # Refused because the quarter would pass what was paid, or because the order is refunded in full by then.
    assert refused <= {(422, "cashier.refund_exceeds_paid"), (409, "cashier.order_not_refundable")}, refused
    rows = await Order.select(Order.refunded_fen, Order.status).order_by(Order.id)
    assert rows == [{"refunded_fen": 10_000, "status": "refunded"}] * 2
    assert await PaymentRefund.count().where(PaymentRefund.status == "succeeded") == 8
    assert await points.balance_of(shopper["member"]["id"]) == (0, 0)  # each order's 200 taken back in quarters


@pytest.mark.parametrize("kind", ["till", "store_code", "groupbuy"])
async def test_the_sweeper_racing_a_notify_settles_each_kind_once(
    make_client, demo, notifier, sandbox_provider, settings, kind
):
    """The trade's outcome is unknown here while WeChat Pay has the money: the sweeper's query finds it paid
    just as the notification arrives. The order is paid once, earns once (a seat counts once), no refund."""
    async with make_client(micropay_inline_wait_seconds=0.0, micropay_timeout_seconds=0.0) as client:
        openid = f"oSweeperRace{kind:0>14}"
        shopper = await member_login(client, openid=openid)
        if kind == "till":
            cashier1 = await staff_login(client, "cashier1")
            code = await payment_code(client, openid, "password_then_success")
            order = (await scan(client, cashier1, demo["S001"], code, f"race-{kind}-00001", amount=5000)).json()
            order_id, number = order["id"], order["outTradeNo"]
            for _ in range(2):  # the shopper typed their password: WeChat Pay holds the money by the second query
                await sandbox.query_trade(number)
        elif kind == "store_code":
            started = (await pay_at_store(client, demo["S001"], shopper, 5000)).json()
            order_id, number = started["orderId"], started["outTradeNo"]
            await sandbox.pay_prepay(number)
        else:
            (friend,) = await shoppers(client, 1, prefix="oSweeperRaceFriend")
            seat, _ = await a_seat_in_a_group_of_two(client, demo, shopper, friend)
            order_id, number = seat["order"]["id"], seat["order"]["outTradeNo"]
            await sandbox.pay_prepay(number)
        await make_due(order_id)
        paid = await sandbox.find_trade(number)
        assert paid["state"] == "SUCCESS"
        policy = PaymentPolicy.from_settings(settings)
        message = sealed(notifier, paid)
        results = await asyncio.gather(
            sweep_once(provider=sandbox_provider, policy=policy),
            post(client, message),
            sweep_once(provider=sandbox_provider, policy=policy),
            post(client, message),
        )
        assert [results[1].status_code, results[3].status_code] == [204, 204]
        row = await Order.select(Order.status, Order.paid_fen).where(Order.id == order_id).first()
        assert row["status"] == "paid"
        assert await PaymentRefund.count() == 0
        earned = await PointsEntry.count().where(PointsEntry.kind == EntryKind.earn)
        assert earned == (0 if kind == "groupbuy" else 1)  # a seat earns when its group succeeds
        if kind == "groupbuy":
            assert (await Group.select(Group.seats_paid).first())["seats_paid"] == 1


async def test_the_fifty_first_refund_of_a_payment_is_refused_here(app_client, demo):
    client = app_client
    cashier1 = await staff_login(client, "cashier1")
    openid = "oFiftyRefunds000000000001"
    till = (
        await scan(client, cashier1, demo["S001"], await payment_code(client, openid), "fifty-refunds-1", amount=10_000)
    ).json()
    for n in range(50):
        assert (await refund(client, cashier1, till["id"], 10, f"fifty-{n:03d}")).status_code == 201
    over = await refund(client, cashier1, till["id"], 10, "fifty-050")
    assert (over.status_code, over.json()["code"], over.json()["details"]) == (
        409,
        "cashier.refund_limit",
        {"maxRefunds": 50},
    )
    assert (await Order.select(Order.refunded_fen).first())["refunded_fen"] == 500
    assert await PaymentRefund.count() == 50


async def test_a_clawed_back_referral_leaves_the_leaderboard_at_once(app_client, demo):
    client = app_client
    campaign = await new_referral_campaign(client, holdingPeriodDays=0)
    sharer = await member_login(client, openid="oBoardSharer0000000000001")
    link = await share(client, sharer, campaignId=campaign["id"])
    await login_with(client, link["scene"], openid="oBoardFriend0000000000001")
    cashier1 = await staff_login(client, "cashier1")
    order = (
        await scan(
            client, cashier1, demo["S001"], await payment_code(client, "oBoardFriend0000000000001"), "board-first-01"
        )
    ).json()
    board = f"/api/v1/referral-campaigns/{campaign['id']}/leaderboard"
    assert [row["referrals"] for row in (await client.get(board)).json()["items"]] == [1]
    assert (await refund(client, cashier1, order["id"], 100, "board-refund-1")).status_code == 201
    assert (await client.get(board)).json()["items"] == []  # no minute's wait for the board to expire


async def test_the_landing_welcomes_only_a_payer_the_payment_made_a_member(app_client, demo):
    client = app_client
    hq = await staff_login(client, "hq")
    created = await client.post(
        "/api/v1/admin/stores",
        headers=hq,
        json={"code": "S009", "name": "Landing", "landingText": "感谢惠顾", "welcomeText": "已为您开通会员"},
    )
    assert created.status_code == 201, created.text
    store_id = created.json()["id"]
    await client.post(
        "/api/v1/admin/staff",
        headers=hq,
        json={"username": "cashier9", "password": "correct-horse-battery", "role": "cashier", "storeIds": [store_id]},
    )
    cashier9 = await staff_login(client, "cashier9")
    openid = "oLandingPayer000000000001"
    first = (await scan(client, cashier9, store_id, await payment_code(client, openid), "landing-first-1")).json()
    assert (first["memberEnrolled"], first["landing"]["text"]) == (True, "感谢惠顾\n已为您开通会员")
    again = (await scan(client, cashier9, store_id, await payment_code(client, openid), "landing-again-1")).json()
    assert (again["memberEnrolled"], again["landing"]["text"]) == (False, "感谢惠顾")


def test_an_order_answers_every_field_the_contract_names():
    """The till's order fields as they were, and those every order has now."""
    names = {field.encode_name for field in msgspec.structs.fields(OrderOut)}
    assert {
        "id",
        "storeId",
        "amountFen",
        "paidFen",
        "pointsRedeemed",
        "status",
        "outTradeNo",
        "memberId",
        "memberEnrolled",
        "pointsEarned",
        "createdAt",
        "paidAt",
        "landing",
        "kind",
        "storeName",
        "discountFen",
        "payableFen",
        "refundedFen",
        "couponId",
        "failureReason",
        "lines",
    } <= names

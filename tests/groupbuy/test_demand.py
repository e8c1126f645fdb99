"""HQ sees the demand per pickup store before ordering from the supplier, in JSON or as a spreadsheet."""

import csv
import io

from backend.groupbuy.tables import Seat
from backend.stores.tables import Store
from tests.conftest import staff_login
from tests.groupbuy.test_seat_payments import confirm
from tests.groupbuy.test_seats import join, new_campaign, open_group, shoppers


async def test_demand_counts_firm_tentative_and_picked_up_units_per_store(client, demo):
    await Store.update({Store.name: '=HYPERLINK("x") 旗舰店'}).where(Store.id == demo["S002"])
    campaign = await new_campaign(client, demo, groupSize=2, perMemberLimit=3)
    a, b, c, d = await shoppers(client, 4, prefix="oDemand")
    # A group that succeeded: 2 units at S001, 1 at S002; the S001 order is picked up.
    full = (await open_group(client, a, campaign["id"], demo["S001"], quantity=2)).json()
    other = (await join(client, b, full["group"]["id"], demo["S002"])).json()
    for order in (full["order"], other["order"]):
        await confirm(client, order["outTradeNo"])
    code = (await Seat.select(Seat.pickup_code).where(Seat.order == full["order"]["id"]).first())["pickup_code"]
    picked = await client.post(
        "/api/v1/cashier/pickups",
        headers=await staff_login(client, "cashier1"),
        json={"storeId": demo["S001"], "pickupCode": code},
    )
    assert picked.status_code == 200
    # A group still forming: 3 units paid at S002 and 1 unpaid at S001.
    forming = (await open_group(client, c, campaign["id"], demo["S002"], quantity=3)).json()
    await confirm(client, forming["order"]["outTradeNo"])
    await join(client, d, forming["group"]["id"], demo["S001"])

    hq = await staff_login(client, "hq")
    url = f"/api/v1/admin/groupbuy/campaigns/{campaign['id']}/demand"
    report = (await client.get(url, headers=hq)).json()
    by_store = {
        row["storeCode"]: (row["firmUnits"], row["tentativeUnits"], row["pickedUpUnits"]) for row in report["rows"]
    }
    assert by_store == {"S001": (2, 1, 2), "S002": (1, 3, 0)}
    assert report["totals"] == {"firmUnits": 3, "tentativeUnits": 4, "pickedUpUnits": 2, "virtualSeats": 0}
    assert {row["pickupDate"] for row in report["rows"]} == {campaign["pickupDate"]}

    sheet = await client.get(url, params={"format": "csv"}, headers=hq)
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
    assert sheet.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    lines = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert lines[0][0].startswith("门店编码")
    assert lines[1][:2] == ["S001", "Store S001"] and lines[1][3:] == ["2", "1", "2", "0"]
    assert lines[2][1] == '\'=HYPERLINK("x") 旗舰店'  # shown as text, never run as a formula
    assert lines[-1][3:] == ["3", "4", "2", "0"]


async def test_only_hq_sees_demand(client, demo):
    campaign = await new_campaign(client, demo)
    url = f"/api/v1/admin/groupbuy/campaigns/{campaign['id']}/demand"
    assert (await client.get(url, headers=await staff_login(client, "manager1"))).status_code == 403
    hq = await staff_login(client, "hq")
    missing = await client.get("/api/v1/admin/groupbuy/campaigns/999999/demand", headers=hq)
    assert (missing.status_code, missing.json()["code"]) == (404, "groupbuy.campaign_not_found")
    bad = await client.get(url, params={"format": "xlsx"}, headers=hq)
    assert (bad.status_code, bad.json()["code"]) == (422, "request.invalid")

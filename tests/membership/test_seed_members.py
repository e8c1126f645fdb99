"""The benchmark's seed: members, tags and orders made by set-based SQL, as segments then read them."""

from backend.cli import SEED_TAG, seed_members
from backend.core.clock import utcnow
from backend.members.tables import Member
from backend.membership import service
from backend.membership.schemas import SegmentRules
from backend.membership.tables import MemberTag, Tag
from backend.orders.tables import Order


async def test_seed_members_adds_members_with_tags_and_paid_orders(demo):
    await seed_members(60)
    await seed_members(60)  # adds as many again
    assert await Member.count() == 120 and await MemberTag.count() == 114
    assert await Order.count() == 108 + 36
    tag = await Tag.select(Tag.id).where((Tag.name == SEED_TAG[0]) & (Tag.group_name == SEED_TAG[1])).first()
    now = utcnow()
    assert await service.count_members(SegmentRules(tag_ids=[tag["id"]], last_paid_within_days=90), now=now) == 108
    assert await service.count_members(SegmentRules(min_orders=2), now=now) == 36
    stores = {row["enrolled_store"] for row in await Member.select(Member.enrolled_store)}
    assert stores == {demo["S001"], demo["S002"], demo["S003"]}

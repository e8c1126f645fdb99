from piccolo.columns import ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.members.tables import Member
from backend.stores.tables import Staff


class Tag(Table, tablename="tag"):
    """A label HQ puts on members (口味偏好: 榴莲控), in an optional group ("" for none)."""

    name = Varchar(length=50)
    group_name = Varchar(length=50, default="")
    created_at = Timestamptz()
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)

    tag_one_name_per_group = Unique([group_name, name])
    tag_has_a_name = Check("\"name\" <> ''")


class MemberTag(Table, tablename="member_tag"):
    """A tag on a member, once; set by HQ or by a manager of a store the member belongs to."""

    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)  # a member's tags
    tag = ForeignKey(Tag, null=False, on_delete=OnDelete.restrict)
    created_at = Timestamptz()
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)

    # Also the index a segment's tag rule reads: the members holding a tag.
    member_tag_once = Unique([tag, member])


class Segment(Table, tablename="segment"):
    """Rules over members, kept as HQ wrote them (JSON); who matches is decided when it is read."""

    name = Varchar(length=100)
    rules = Text()
    created_at = Timestamptz()
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
